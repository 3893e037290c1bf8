//! Wire types and codecs shared by every side of the companion platform (sans-IO).
#![forbid(unsafe_code)]
