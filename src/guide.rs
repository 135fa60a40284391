//! The guide (to be written).
