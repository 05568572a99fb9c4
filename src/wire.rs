//! (wire: being written)
