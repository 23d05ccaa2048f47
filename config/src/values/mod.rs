//! Parsers for the value formats user-data shares between sections: durations, byte sizes, signals, capabilities.

pub mod byte_size;
pub mod capability;
pub mod duration;
pub mod signal;
