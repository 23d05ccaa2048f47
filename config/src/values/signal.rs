//! Signals named as Docker's `--stop-signal` takes them: `SIGTERM`, `TERM`, `RTMIN+3` or a number.

use std::fmt;

/// Linux signal names, numbered from 1 (x86-64, arm64 and most architectures).
const NAMES: [&str; 31] = [
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2", "PIPE", "ALRM", "TERM",
    "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO",
    "PWR", "SYS",
];
const RTMIN: i32 = 34;
const RTMAX: i32 = 64;

/// A signal number, 1..=64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal(pub i32);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{text:?} is not a signal like SIGTERM, TERM, SIGRTMIN+3 or a number from 1 to 64")]
pub struct SignalError {
    pub text: String,
}

/// Parses a signal name (with or without `SIG`, any case) or number.
pub fn parse_signal(text: &str) -> Result<Signal, SignalError> {
    let error = || SignalError { text: text.to_owned() };
    if let Ok(number) = text.parse::<i32>() {
        return if (1..=RTMAX).contains(&number) { Ok(Signal(number)) } else { Err(error()) };
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(index) = NAMES.iter().position(|known| *known == name) {
        return Ok(Signal(index as i32 + 1));
    }
    let realtime = |base: i32, offset: Option<&str>, sign: i32| -> Option<i32> {
        let offset: i32 = offset.map_or(Some(0), |text| text.parse().ok())?;
        let number = base + sign * offset;
        (RTMIN..=RTMAX).contains(&number).then_some(number)
    };
    let number = match name {
        "RTMIN" => realtime(RTMIN, None, 1),
        "RTMAX" => realtime(RTMAX, None, 1),
        _ => name
            .strip_prefix("RTMIN+")
            .map(|offset| realtime(RTMIN, Some(offset), 1))
            .or_else(|| name.strip_prefix("RTMAX-").map(|offset| realtime(RTMAX, Some(offset), -1)))
            .flatten(),
    };
    number.map(Signal).ok_or_else(error)
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match usize::try_from(self.0 - 1).ok().and_then(|index| NAMES.get(index)) {
            Some(name) => write!(f, "SIG{name}"),
            None => write!(f, "{}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_numbers() {
        assert_eq!(parse_signal("SIGTERM"), Ok(Signal(15)));
        assert_eq!(parse_signal("term"), Ok(Signal(15)));
        assert_eq!(parse_signal("9"), Ok(Signal(9)));
        assert_eq!(parse_signal("SIGRTMIN+3"), Ok(Signal(37)));
        assert_eq!(Signal(10).to_string(), "SIGUSR1");
        for bad in ["", "SIGFOO", "0", "65", "RTMIN+40"] {
            assert!(parse_signal(bad).is_err(), "{bad}");
        }
    }
}
