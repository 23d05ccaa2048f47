//! Docker's restart policies as user-data spells them: `no`, `on-failure[:N]`, `always`, `unless-stopped`.

use std::fmt;

/// When a container that exited is started again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RestartPolicy {
    #[default]
    No,
    /// Restart after a non-zero exit, at most `max_retries` times when given (`on-failure:0` is no limit, as in
    /// Docker).
    OnFailure {
        max_retries: Option<u32>,
    },
    Always,
    /// Like `always`, except after an explicit stop through the API.
    UnlessStopped,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{text:?} is not one of no, on-failure[:N], always, unless-stopped")]
pub struct RestartPolicyError {
    pub text: String,
}

pub fn parse_restart_policy(text: &str) -> Result<RestartPolicy, RestartPolicyError> {
    let error = || RestartPolicyError { text: text.to_owned() };
    match text {
        "no" => Ok(RestartPolicy::No),
        "always" => Ok(RestartPolicy::Always),
        "unless-stopped" => Ok(RestartPolicy::UnlessStopped),
        "on-failure" => Ok(RestartPolicy::OnFailure { max_retries: None }),
        _ => {
            let count = text.strip_prefix("on-failure:").ok_or_else(error)?;
            if !count.bytes().all(|byte| byte.is_ascii_digit()) {
                return Err(error());
            }
            // Docker's MaximumRetryCount 0 is no limit, not "never".
            let max_retries = count.parse().map_err(|_| error())?;
            Ok(RestartPolicy::OnFailure { max_retries: Some(max_retries).filter(|count| *count > 0) })
        }
    }
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestartPolicy::No => f.write_str("no"),
            RestartPolicy::OnFailure { max_retries: None } => f.write_str("on-failure"),
            RestartPolicy::OnFailure { max_retries: Some(count) } => write!(f, "on-failure:{count}"),
            RestartPolicy::Always => f.write_str("always"),
            RestartPolicy::UnlessStopped => f.write_str("unless-stopped"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_policies() {
        assert_eq!(parse_restart_policy("on-failure:3"), Ok(RestartPolicy::OnFailure { max_retries: Some(3) }));
        assert_eq!(parse_restart_policy("on-failure").unwrap().to_string(), "on-failure");
        assert_eq!(parse_restart_policy("on-failure:0"), Ok(RestartPolicy::OnFailure { max_retries: None }));
        assert_eq!(parse_restart_policy("unless-stopped"), Ok(RestartPolicy::UnlessStopped));
        for bad in ["sometimes", "on-failure:", "on-failure:-1", "Always"] {
            assert!(parse_restart_policy(bad).is_err(), "{bad}");
        }
    }
}
