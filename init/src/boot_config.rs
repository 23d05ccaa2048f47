//! The configuration this boot runs with: the config drive's user-data when it is valid (kept as a new
//! generation), else the last accepted generation, else safe defaults. A bad config never stops the boot.

use std::path::Path;

use keel_config::generations::GenerationStore;
use keel_config::{MetaData, UserData};
use keel_logs::error_chain;

use crate::config_drive::{self, DriveLayout};

/// Where accepted user-data generations are kept, on the data partition.
pub const GENERATIONS_DIR: &str = "/var/lib/keel/config";

/// The configuration chosen for this boot, with where it came from.
pub struct BootConfig {
    pub user_data: UserData,
    pub meta_data: MetaData,
    /// For the console: `generation 3 (1a2b3c4d5e6f) from /dev/vdb`, `defaults`, ….
    pub source: String,
    /// Every problem met on the way, each already logged.
    pub problems: Vec<String>,
    /// The user-data text in force (empty on defaults), for the API's `GET /keel/v1/config`.
    pub text: String,
    /// Its generation; 0 when it was not kept.
    pub generation: u64,
    /// Every error of the config drive's user-data when it was rejected, for the API's status.
    pub rejected: Vec<keel_config::ConfigError>,
}

/// Reads the config drive, validates its user-data, and picks the configuration for this boot.
pub fn load() -> BootConfig {
    let mut problems = Vec::new();
    let mut rejected = Vec::new();
    let store = match GenerationStore::open(GENERATIONS_DIR) {
        Ok(store) => Some(store),
        Err(error) => {
            report(&mut problems, format!("config generations: {}", error_chain(&error)));
            None
        }
    };

    let drive = match config_drive::find() {
        Some((device, filesystem, layout)) => match config_drive::read(&device, filesystem, layout) {
            Ok(drive) => Some(drive),
            Err(error) => {
                report(&mut problems, format!("config drive {}: {}", device.display(), error_chain(&error)));
                None
            }
        },
        None => None,
    };
    let meta_data = drive.as_ref().map(|drive| drive.meta_data.clone()).unwrap_or_default();

    if let Some(drive) = &drive {
        let device = drive.device.display();
        match &drive.user_data {
            Some(text) => match parse(drive.layout, text) {
                Ok(user_data) => {
                    let mut number = 0;
                    let source = match store.as_ref().map(|store| store.accept(text)) {
                        Some(Ok(generation)) => {
                            number = generation.number;
                            format!("generation {} ({}) from {device}", generation.number, generation.digest)
                        }
                        Some(Err(error)) => {
                            report(
                                &mut problems,
                                format!("cannot keep the user-data as a generation: {}", error_chain(&error)),
                            );
                            format!("user-data from {device} (not kept)")
                        }
                        None => format!("user-data from {device} (not kept)"),
                    };
                    let text = text.clone();
                    return BootConfig { user_data, meta_data, source, problems, text, generation: number, rejected };
                }
                Err(errors) => {
                    rejected.clone_from(&errors.errors);
                    for error in errors.iter() {
                        report(&mut problems, error.to_string());
                    }
                    report(
                        &mut problems,
                        format!("the user-data on {device} is invalid ({} errors); it is not used", errors.len()),
                    );
                }
            },
            None => log::info!("config drive {device} has no user-data"),
        }
    }

    if let Some(store) = &store {
        let (latest, errors) = store.latest();
        for error in errors {
            report(&mut problems, format!("config generations: {}", error_chain(&error)));
        }
        if let Some((generation, text)) = latest {
            match UserData::parse(&generation.path.to_string_lossy(), &text) {
                Ok(user_data) => {
                    let source = format!("generation {} ({}), the last accepted", generation.number, generation.digest);
                    let number = generation.number;
                    return BootConfig { user_data, meta_data, source, problems, text, generation: number, rejected };
                }
                Err(errors) => {
                    report(&mut problems, format!("stored generation {} is invalid: {errors}", generation.number))
                }
            }
        }
    }
    BootConfig {
        user_data: UserData::default(),
        meta_data,
        source: "defaults (DHCP, no containers)".to_owned(),
        problems,
        text: String::new(),
        generation: 0,
        rejected,
    }
}

fn parse(layout: DriveLayout, text: &str) -> Result<UserData, keel_config::ConfigErrors> {
    let name = Path::new(layout.user_data_path()).file_name().map(|name| name.to_string_lossy().into_owned());
    UserData::parse(name.as_deref().unwrap_or("user-data"), text)
}

fn report(problems: &mut Vec<String>, problem: String) {
    log::error!("{problem}");
    problems.push(problem);
}
