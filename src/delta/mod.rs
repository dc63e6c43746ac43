//! delta layer (to be filled in).
