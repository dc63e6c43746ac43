//! checksum layer (to be filled in).
