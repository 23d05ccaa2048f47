//! What a keel OS image *is*, shared by the code that writes it (`keel-build`) and the code that reads it (`keel`,
//! PID 1).
//!
//! # Background
//! A keel disk is a GPT disk with an EFI system partition, two root slots and a data partition. systemd-boot picks
//! a Type #1 boot entry per slot; the entry passes `keel.slot=<a|b>` to the kernel, and PID 1 mounts the root slot of
//! that name. Writer and reader must agree on every name in that chain, so the names live here and nowhere else.
//!
//! The update bundle ([`bundle`]) lives here too: `keel-build bundle` writes it and PID 1 reads it, and both must
//! agree on every byte.
//!
//! # Design
//! Pure values and pure functions only: no file or device I/O, so the A/B logic can be tested on values a test
//! builds. The bundle reader works on any `Read` it is given.
//!
//! # Current limitations
//! One architecture (x86-64), one root filesystem type (erofs).
//!
//! # Example
//! ```
//! use keel_os_image::{BootEntryName, Slot};
//! let entry: BootEntryName = "keel-1.2.0-b+3.conf".parse().unwrap();
//! assert_eq!(entry.slot, Slot::B);
//! assert_eq!(entry.tries_left(), Some(3));
//! assert_eq!(keel_os_image::layout::root_partition_name(Slot::B), "keel-root-b");
//! ```

pub mod boot_entry;
pub mod bundle;
pub mod channel;
pub mod initramfs;
pub mod layout;
pub mod os_release;
pub mod slot;
pub mod version;

pub use boot_entry::{BootCounter, BootEntryError, BootEntryName};
pub use slot::{Slot, SlotError};
