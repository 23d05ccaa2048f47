//! `make bench`'s measurements: keel and a Debian 12 + systemd + Docker peer, booted under the same kernel and
//! QEMU settings in the same run, each read from its own console; `keel-bench` prints the table.

pub mod flood;
pub mod keel;
pub mod memory;
pub mod peer;
pub mod root_files;
pub mod workload;
