//! The ACPI power button (QEMU's `system_powerdown`, a cloud console's "shut down"), turned into SIGPWR for PID 1.
//!
//! The kernel reports the button only as an input event; nothing delivers it to PID 1. A thread per button reads
//! `struct input_event` records and signals PID 1, so the press reaches the main loop like any other shutdown
//! signal.

use keel_logs::error_chain;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::fs::{self, File};
use std::io::Read;
use std::path::PathBuf;

const BUTTON_NAME: &str = "Power Button";
const EV_KEY: u16 = 1;
const KEY_POWER: u16 = 116;
/// `struct input_event` on 64-bit: a 16-byte timeval, then type (u16), code (u16), value (i32).
const EVENT_SIZE: usize = 24;

/// Starts a watcher thread for every power button; returns the event devices watched.
pub fn watch_power_buttons() -> Vec<PathBuf> {
    let mut watched = Vec::new();
    for device in find_power_buttons() {
        let file = match File::open(&device) {
            Ok(file) => file,
            Err(error) => {
                log::warn!("cannot open power button {}: {}", device.display(), error_chain(&error));
                continue;
            }
        };
        let name = device.display().to_string();
        let spawned = std::thread::Builder::new().name("power-button".to_owned()).spawn(move || {
            watch(file, &name);
        });
        match spawned {
            Ok(_) => watched.push(device),
            Err(error) => log::warn!("cannot start the power button watcher: {}", error_chain(&error)),
        }
    }
    watched
}

fn find_power_buttons() -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir("/sys/class/input") else { return Vec::new() };
    let mut buttons: Vec<PathBuf> = entries
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("event"))
        .filter(|entry| {
            fs::read_to_string(entry.path().join("device/name")).is_ok_and(|name| name.trim() == BUTTON_NAME)
        })
        .map(|entry| PathBuf::from("/dev/input").join(entry.file_name()))
        .collect();
    buttons.sort();
    buttons
}

fn watch(mut device: File, name: &str) {
    let mut event = [0u8; EVENT_SIZE];
    loop {
        if let Err(error) = device.read_exact(&mut event) {
            log::warn!("power button {name} stopped: {}", error_chain(&error));
            return;
        }
        let kind = u16::from_ne_bytes([event[16], event[17]]);
        let code = u16::from_ne_bytes([event[18], event[19]]);
        let value = i32::from_ne_bytes([event[20], event[21], event[22], event[23]]);
        if kind == EV_KEY && code == KEY_POWER && value == 1 {
            log::info!("power button pressed");
            if let Err(error) = kill(Pid::this(), Signal::SIGPWR) {
                log::error!("cannot signal the power button to PID 1: {}", error_chain(&error));
            }
        }
    }
}
