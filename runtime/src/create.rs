//! `Container::create`: resolves what and whom a container runs, prepares its directories, volumes and cgroup,
//! and lays out the plan its first process follows.

use std::ffi::CString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use keel_config::containers::mounts::VolumeSource;
use keel_config::{ContainerConfig, NetworkMode};

use super::capabilities::{capability_mask, last_capability, own_permitted, CAP_SYS_RESOURCE};
use super::cgroup::ContainerCgroup;
use super::child::ContainerPlan;
use super::container::{process_plan, rlimits, Container, ContainerPaths, ProcessLimits, RuntimeDirs};
use super::container_init;
use super::device_filter::{self, DeviceFilterError};
use super::etc_files::{container_hostname, etc_files, HostFileError};
use super::host_devices;
use super::image_config::ImageRunConfig;
use super::image_volumes::{anonymous_volumes, depth};
use super::mounts::{tmpfs_options, MountPlanner, PathNulError, UserMount};
use super::process_spec::{self, env_value, NoCommandError};
use super::seccomp::{self, SeccompError};
use super::sys;
use super::users::{read_merged, resolve_user, view_of, UserError};
use super::volumes::{ensure_named_volume, VolumeError};

/// What failed while creating a container; each variant names it.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("container {container}: creating {path}")]
    CreateDir {
        container: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    NoCommand(#[from] NoCommandError),
    #[error(transparent)]
    User(#[from] UserError),
    #[error("container {container}")]
    Volume {
        container: String,
        #[source]
        source: VolumeError,
    },
    #[error("container {container}: bind source {path}")]
    BindSource {
        container: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("container {container}: writing {path}")]
    WriteEtc {
        container: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    HostFile(#[from] HostFileError),
    #[error(transparent)]
    DeviceFilter(#[from] DeviceFilterError),
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    #[error(
        "container {container}: init = true needs the container init program {path}, a static executable \
         (the musl build: `make init`), which is not there"
    )]
    NoContainerInit { container: String, path: PathBuf },
    #[error("container {container}")]
    Path {
        container: String,
        #[source]
        source: PathNulError,
    },
}

impl Container {
    /// Prepares container `name` from its config and its image's unpacked layers (lowest first) and defaults.
    /// Nothing runs yet; the overlay root is mounted by the
    /// container's first process inside its own mount namespace, so it disappears with the container.
    pub fn create(
        name: &str,
        config: &ContainerConfig,
        layer_dirs: &[PathBuf],
        image_config: &ImageRunConfig,
        dirs: &RuntimeDirs,
    ) -> Result<Container, CreateError> {
        let last_capability = last_capability();
        let capabilities =
            capability_mask(config.privileged, &config.cap_add, &config.cap_drop, last_capability) & own_permitted();
        // Compiled first (a bad profile leaves nothing behind) and in the parent: the child only installs it.
        let seccomp_filters = seccomp::container_filters(name, &config.seccomp, config.privileged, capabilities)?;
        let paths = ContainerPaths::new(&dirs.containers_dir, name);
        let create_dir = |path: &Path| {
            fs::create_dir_all(path).map_err(|source| CreateError::CreateDir {
                container: name.to_owned(),
                path: path.to_owned(),
                source,
            })
        };
        for dir in [&paths.upper, &paths.work, &paths.rootfs, &paths.etc] {
            create_dir(dir)?;
        }
        // The upper layer holds whatever nodes the container made (mknod is allowed, as in Docker): no host user
        // but root may reach them.
        fs::set_permissions(&paths.dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(|source| CreateError::CreateDir { container: name.to_owned(), path: paths.dir.clone(), source })?;
        if config.init && !matches!(container_init::is_static_executable(&dirs.container_init), Ok(true)) {
            return Err(CreateError::NoContainerInit { container: name.to_owned(), path: dirs.container_init.clone() });
        }
        let hostname = container_hostname(name, config);
        let mut spec = process_spec::resolve(name, config, image_config, &hostname)?;
        let view = view_of(&paths.upper, layer_dirs);
        let passwd = read_merged(name, &view, "etc/passwd")?.unwrap_or_default();
        let group = read_merged(name, &view, "etc/group")?.unwrap_or_default();
        let user = resolve_user(name, &spec.user, &passwd, &group)?;
        if env_value(&spec.env, "HOME").is_none() {
            spec.env.push(format!("HOME={}", user.home));
        }

        // The device filter goes on the cgroup before any process of the container can join it; without one
        // only a privileged container may run (docs/containers.md, "Isolation").
        let device_rules = device_filter::container_rules(name, config)?;
        let cgroup = dirs.cgroup_root.as_deref().map(|root| ContainerCgroup::create(root, name, &config.resources));
        let cgroup = match cgroup.transpose() {
            Ok(cgroup) => {
                device_filter::install(name, &device_rules, Ok(cgroup.as_ref()))?;
                cgroup
            }
            Err(error) => {
                let reason = keel_logs::error_chain(&error);
                device_filter::install(name, &device_rules, Err(reason.clone()))?;
                log::warn!("{reason}; running it (privileged) without a cgroup");
                None
            }
        };

        let mut mounts = Vec::new();
        for (file, contents) in etc_files(name, config, &hostname, &dirs.host_etc)? {
            let path = paths.etc.join(file);
            fs::write(&path, contents).map_err(|source| CreateError::WriteEtc {
                container: name.to_owned(),
                path: path.clone(),
                source,
            })?;
            // Read-only with a read-only root, as Docker mounts them.
            mounts.push(UserMount::Bind {
                host: path,
                target: format!("/etc/{file}"),
                read_only: config.read_only,
                is_file: true,
            });
        }
        let mut volume_mounts = Vec::new();
        for volume in &config.volumes {
            let host = match &volume.source {
                VolumeSource::Bind(host) => {
                    let host = PathBuf::from(host);
                    // Like `docker run -v`: a missing host directory is created.
                    if !host.exists() {
                        fs::create_dir_all(&host).map_err(|source| CreateError::BindSource {
                            container: name.to_owned(),
                            path: host.clone(),
                            source,
                        })?;
                    }
                    host
                }
                VolumeSource::Named(volume_name) => ensure_named_volume(
                    &dirs.volumes_dir,
                    volume_name,
                    &volume.target,
                    layer_dirs,
                    &paths.dir.join("volume-scratch"),
                )
                .map_err(|source| CreateError::Volume { container: name.to_owned(), source })?,
            };
            let is_file = host.is_file();
            volume_mounts.push((
                volume.target.clone(),
                UserMount::Bind { host, target: volume.target.clone(), read_only: volume.read_only, is_file },
            ));
        }
        // The image's VOLUMEs: an anonymous volume each, unless the config mounts something there (Docker's rule).
        let volume_targets = config.volumes.iter().map(|volume| volume.target.as_str());
        let mounted: Vec<&str> = volume_targets.chain(config.tmpfs.iter().map(|tmpfs| tmpfs.target.as_str())).collect();
        for volume in anonymous_volumes(name, &image_config.volumes, &mounted) {
            let host = ensure_named_volume(
                &dirs.volumes_dir,
                &volume.name,
                &volume.target,
                layer_dirs,
                &paths.dir.join("volume-scratch"),
            )
            .map_err(|source| CreateError::Volume { container: name.to_owned(), source })?;
            let target = volume.target;
            volume_mounts.push((target.clone(), UserMount::Bind { host, target, read_only: false, is_file: false }));
        }
        // Parents before what goes under them, as Docker sorts mounts; the same depth keeps the config's order.
        volume_mounts.sort_by_key(|(target, _)| depth(target));
        mounts.extend(volume_mounts.into_iter().map(|(_, mount)| mount));
        for tmpfs in &config.tmpfs {
            let (flags, data) = tmpfs_options(&tmpfs.options);
            mounts.push(UserMount::Tmpfs { target: tmpfs.target.clone(), flags, data });
        }
        for device in &config.devices {
            mounts.push(UserMount::Device { host: device.host.clone().into(), target: device.container.clone() });
        }

        let path_error = |source| CreateError::Path { container: name.to_owned(), source };
        let mut planner = MountPlanner::default();
        planner.docker_defaults(config.privileged).map_err(path_error)?;
        if config.privileged {
            // Docker's privileged /dev: every host device, on top of the standard nodes.
            planner.host_devices(&host_devices::host_nodes(Path::new("/dev"))).map_err(path_error)?;
        }
        planner.user_mounts(&mounts).map_err(path_error)?;
        // Created now, like Docker does at create time: later the root may be read-only.
        planner.dir(&spec.workdir, 0o755).map_err(path_error)?;
        planner.finish(config.privileged, config.read_only).map_err(path_error)?;

        let cannot_raise_limits = own_permitted() & (1 << CAP_SYS_RESOURCE) == 0;
        let own_hard_limit = |resource| sys::get_rlimit(resource).ok().map(|(_, hard)| hard);
        let own_hard_limit: Option<&dyn Fn(libc::c_int) -> Option<u64>> =
            if cannot_raise_limits { Some(&own_hard_limit) } else { None };
        let limits = ProcessLimits {
            capabilities,
            last_capability,
            no_new_privs: config.no_new_privileges,
            rlimits: rlimits(name, &config.resources.ulimits, own_hard_limit),
            seccomp: seccomp_filters,
        };
        let process = process_plan(&spec.argv, &spec.env, &spec.workdir, &user, &limits).map_err(path_error)?;

        let mut namespaces = libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
        if config.network == NetworkMode::None {
            namespaces |= libc::CLONE_NEWNET;
        }
        let cstring = |path: &Path| {
            CString::new(path.as_os_str().as_encoded_bytes())
                .map_err(|_| path_error(PathNulError { path: path.display().to_string() }))
        };
        let overlay_options = overlay_options(&dirs.layers_root, layer_dirs, &paths).map_err(path_error)?;
        let plan = ContainerPlan {
            namespaces,
            cgroup_procs: cgroup.as_ref().map(|cgroup| cstring(&cgroup.procs_file())).transpose()?,
            loopback_up: config.network == NetworkMode::None,
            layers_root: cstring(&dirs.layers_root)?,
            rootfs: cstring(&paths.rootfs)?,
            overlay_options,
            steps: planner.steps,
            hostname: CString::new(hostname.clone())
                .map_err(|_| path_error(PathNulError { path: hostname.clone() }))?,
            init: if config.init { Some(cstring(&dirs.container_init)?) } else { None },
            process,
        };
        let mut labels = image_config.labels.clone().unwrap_or_default();
        labels.extend(config.labels.clone());
        let stop_signal = Some(image_config.stop_signal.clone()).filter(|signal| !signal.is_empty());
        Ok(Container { name: name.to_owned(), paths, hostname, spec, user, cgroup, labels, stop_signal, plan, limits })
    }
}

/// `lowerdir=` (highest layer first, relative to `layers_root` when inside it), `upperdir=`, `workdir=`. An image
/// without layers gets an empty directory as its only lower layer (overlayfs needs one).
fn overlay_options(layers_root: &Path, layers: &[PathBuf], paths: &ContainerPaths) -> Result<CString, PathNulError> {
    let mut lower: Vec<String> =
        layers.iter().rev().map(|dir| dir.strip_prefix(layers_root).unwrap_or(dir).display().to_string()).collect();
    if lower.is_empty() {
        let empty = paths.dir.join("empty");
        let _ = fs::create_dir_all(&empty);
        lower.push(empty.display().to_string());
    }
    let options =
        format!("lowerdir={},upperdir={},workdir={}", lower.join(":"), paths.upper.display(), paths.work.display());
    CString::new(options.clone()).map_err(|_| PathNulError { path: options })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_layers_are_relative_and_highest_first() {
        let paths = ContainerPaths::new(Path::new("/s/containers"), "web");
        let layers = [PathBuf::from("/l/aaaa"), PathBuf::from("/l/bbbb")];
        let options = overlay_options(Path::new("/l"), &layers, &paths).unwrap();
        assert_eq!(
            options.to_str().unwrap(),
            "lowerdir=bbbb:aaaa,upperdir=/s/containers/web/upper,workdir=/s/containers/web/work"
        );
    }
}
