//! The update channel poller: fetches `[update] url` every `interval` (jittered), installs a newer compatible
//! version it names into the inactive slot, and reboots into it as `[update] reboot` says.

mod decision;
mod fetch;
mod record;
