//! (filter: being written)
