//! A running [`Service`]: our daemon serving the enabled modules, with
//! module changes applied live.
//!
//! Layer: task. Uses the daemon.

use std::net::SocketAddr;
use std::sync::Mutex;

use super::{Invalid, Module, Service};
use crate::daemon::Daemon;
use crate::error::{Error, Result};

/// The daemon started by [`Service::start`].
///
/// Changing modules renders and re-reads the whole configuration and
/// swaps it in: new connections see the change, transfers in flight keep
/// the module they were given (a removed module's transfer finishes).
#[derive(Debug)]
pub struct RunningService {
    service: Service,
    modules: Mutex<Vec<Module>>,
    daemon: Daemon,
    addr: SocketAddr,
    serving: tokio::task::JoinHandle<Result<()>>,
}

impl Service {
    /// Binds the port (the `address` auxiliary parameter, else every IPv4
    /// address) and serves the enabled modules until
    /// [`RunningService::stop`].
    ///
    /// # Errors
    /// [`Error::Syntax`] for an invalid configuration (every problem
    /// listed), [`Error::Start`] when the port cannot be bound.
    pub async fn start(&self, modules: Vec<Module>) -> Result<RunningService> {
        let cfg = self.daemon_config(&modules).map_err(invalid)?;
        let daemon = Daemon::new(cfg);
        let listener = daemon.bind(&daemon.configured_address()).await?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Start(format!("no local address: {e}")))?;
        let d = daemon.clone();
        let serving = tokio::spawn(async move { d.serve(listener).await });
        Ok(RunningService {
            service: self.clone(),
            modules: Mutex::new(modules),
            daemon,
            addr,
            serving,
        })
    }
}

impl Service {
    /// What a host calls at boot, or a supervisor when it (re)loads the
    /// saved configuration: starts the daemon as [`Service::start`] does
    /// when `start_automatically` is true, and does nothing (binds no
    /// port) when it is false. An administrator's explicit start is
    /// [`Service::start`], whatever the flag says.
    ///
    /// # Errors
    /// As [`Service::start`], when the flag is set; a configuration with
    /// the flag off is still validated, so a broken one is reported at
    /// boot rather than at the first manual start.
    pub async fn autostart(&self, modules: Vec<Module>) -> Result<Option<RunningService>> {
        if !self.start_automatically {
            self.daemon_config(&modules).map_err(invalid)?;
            return Ok(None);
        }
        self.start(modules).await.map(Some)
    }
}

fn invalid(e: Invalid) -> Error {
    Error::Syntax(e.to_string())
}

impl RunningService {
    /// The address it listens on.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The modules as configured (enabled or not).
    #[must_use]
    pub fn modules(&self) -> Vec<Module> {
        self.modules
            .lock()
            .map_or_else(|p| p.into_inner().clone(), |m| m.clone())
    }

    /// Connections being served.
    #[must_use]
    pub fn active_connections(&self) -> usize {
        self.daemon.active_connections()
    }

    /// Replaces every module.
    ///
    /// # Errors
    /// Every problem with `modules`; nothing changes then.
    pub fn set_modules(&self, modules: Vec<Module>) -> std::result::Result<(), Invalid> {
        let cfg = self.service.daemon_config(&modules)?;
        let mut slot = self
            .modules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.daemon.reload(cfg);
        *slot = modules;
        Ok(())
    }

    /// Adds `module`, or replaces the one with its name.
    ///
    /// # Errors
    /// As [`RunningService::set_modules`].
    pub fn put_module(&self, module: Module) -> std::result::Result<(), Invalid> {
        let mut all = self.modules();
        match all.iter_mut().find(|m| m.name == module.name) {
            Some(m) => *m = module,
            None => all.push(module),
        }
        self.set_modules(all)
    }

    /// Removes the module called `name`; false when there was none.
    ///
    /// # Errors
    /// As [`RunningService::set_modules`].
    pub fn remove_module(&self, name: &str) -> std::result::Result<bool, Invalid> {
        let mut all = self.modules();
        let before = all.len();
        all.retain(|m| m.name != name);
        if all.len() == before {
            return Ok(false);
        }
        self.set_modules(all)?;
        Ok(true)
    }

    /// Stops accepting and waits (up to 30 seconds) for transfers in
    /// flight.
    ///
    /// # Errors
    /// The accept loop's error.
    pub async fn stop(self) -> Result<()> {
        self.daemon.shutdown_handle().shutdown();
        match self.serving.await {
            Ok(r) => r,
            Err(e) => Err(Error::Start(format!("daemon task failed: {e}"))),
        }
    }
}
