//! The steps `keel-build` runs to turn a recipe into a keel disk image or update bundle; `main.rs` is the thin CLI
//! over [`image`], [`bundle`] and [`update_key`].

pub mod bcj_x86;
pub mod boot_dir;
pub mod bundle;
pub mod channel;
pub mod command;
pub mod config_drive;
pub mod cpio;
pub mod data_fs;
pub mod disk_writer;
pub mod erofs;
pub mod esp;
pub mod gpt;
pub mod image;
pub mod initramfs;
pub mod kernel_cache;
pub mod kernel_lock;
pub mod kernel_package;
pub mod module_closure;
pub mod module_index;
pub mod module_signature;
pub mod recipe;
pub mod reproducible;
pub mod root_tree;
pub mod slot_build;
pub mod staging;
pub mod update_key;
pub mod vmlinux;
