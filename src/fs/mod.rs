//! Local side effects: reading the source tree into a file list.
//!
//! Layer: fs (L3). Uses `flist` and `std::fs`; never the network.
//! Mirrors upstream flist.c (`send_file_list`, `make_file`,
//! `send_directory`) for the scanning part and uidlist.c for names.

pub mod acls;
pub mod beneath;
pub mod beneath_read;
pub mod chmod;
pub mod scan;
pub mod xattrs;

pub use scan::{
    ScanOptions, ScanResult, clean_fname, scan_relative, scan_relative_beneath, scan_sources,
    scan_sources_beneath, scan_sources_filtered, sort_scan,
};
