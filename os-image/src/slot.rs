//! The two root slots, `a` and `b`, and how a slot is named on the kernel command line.

use std::fmt;
use std::str::FromStr;

/// The kernel command-line parameter that tells PID 1 which root slot to mount.
pub const SLOT_PARAMETER: &str = "keel.slot";

/// One of the two root slots of an A/B keel disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Slot {
    A,
    B,
}

/// A slot name that is neither `a` nor `b`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{value:?} is not a root slot: expected \"a\" or \"b\"")]
pub struct SlotError {
    pub value: String,
}

impl Slot {
    /// Both slots, in the order a fresh disk fills them.
    pub const ALL: [Slot; 2] = [Slot::A, Slot::B];

    pub fn name(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }

    /// The slot an update writes to while this one is running.
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Slot {
    type Err = SlotError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "a" => Ok(Slot::A),
            "b" => Ok(Slot::B),
            _ => Err(SlotError { value: value.to_owned() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for slot in [Slot::A, Slot::B] {
            assert_eq!(slot.name().parse::<Slot>(), Ok(slot));
        }
        assert_eq!(Slot::A.other(), Slot::B);
    }

    #[test]
    fn rejects_other_names() {
        let error = "A".parse::<Slot>().unwrap_err();
        assert_eq!(error.to_string(), "\"A\" is not a root slot: expected \"a\" or \"b\"");
    }
}
