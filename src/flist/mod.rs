//! flist layer (to be filled in).
