//! Docker's device access model on cgroup2: the device rules a container gets, compiled into a
//! `BPF_PROG_TYPE_CGROUP_DEVICE` program attached to its cgroup, which the kernel runs on every open and mknod
//! of a device node by any process in that cgroup.
//!
//! Without it, root in a container (which keeps `CAP_MKNOD`, as in Docker) could `mknod` the host's disk and read
//! or write it, and any user could open a world-writable device node shipped in an image layer. With it, a node
//! can still be created anywhere (Docker allows `mknod` of every device) but only the allowed ones open.
//!
//! Rules are allow rules over a default deny, so their order does not matter: the program returns 1 at the first
//! rule that matches and 0 after the last. Semantics follow runc's cgroup2 device filter (facts, not code): the
//! context is `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }` with the device type in the
//! low 16 bits of `access_type` and the requested access (mknod 1, read 2, write 4) above them; a rule matches
//! when the type and numbers match (or are wildcards) and the requested access is a subset of the rule's.

use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use keel_config::ContainerConfig;

use super::bpf::{self, Instruction, Reg};
use super::cgroup::ContainerCgroup;

/// `BPF_DEVCG_ACC_*`: what a process asks of a device.
pub const ACCESS_MKNOD: u32 = 1;
pub const ACCESS_READ: u32 = 2;
pub const ACCESS_WRITE: u32 = 4;
pub const ACCESS_ALL: u32 = ACCESS_MKNOD | ACCESS_READ | ACCESS_WRITE;

/// `BPF_DEVCG_DEV_*`.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

/// The device types a rule names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceType {
    Char,
    Block,
    /// `a`: both.
    All,
}

/// One allow rule, as `type major:minor access` in the cgroup v1 `devices.allow` notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRule {
    pub kind: DeviceType,
    /// `None` is `*`.
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// `ACCESS_*` bits.
    pub access: u32,
}

impl DeviceRule {
    pub const fn char(major: u32, minor: u32) -> DeviceRule {
        DeviceRule { kind: DeviceType::Char, major: Some(major), minor: Some(minor), access: ACCESS_ALL }
    }
}

/// Docker's default rules (moby's default spec plus the ones runc adds): mknod of any character or block
/// device, and full access to null, zero, full, random, urandom, tty, console, ptmx and the pts devices. tun
/// (10:200) and fuse (10:229) are not in it.
pub const DOCKER_DEFAULT_RULES: [DeviceRule; 11] = [
    DeviceRule { kind: DeviceType::Char, major: None, minor: None, access: ACCESS_MKNOD },
    DeviceRule { kind: DeviceType::Block, major: None, minor: None, access: ACCESS_MKNOD },
    DeviceRule::char(1, 3),
    DeviceRule::char(1, 5),
    DeviceRule::char(1, 7),
    DeviceRule::char(1, 8),
    DeviceRule::char(1, 9),
    DeviceRule::char(5, 0),
    DeviceRule::char(5, 1),
    DeviceRule::char(5, 2),
    DeviceRule { kind: DeviceType::Char, major: Some(136), minor: None, access: ACCESS_ALL },
];

/// Everything, for privileged containers.
pub const ALLOW_ALL: DeviceRule = DeviceRule { kind: DeviceType::All, major: None, minor: None, access: ACCESS_ALL };

/// Why a container's device filter could not be set up; the container does not start.
#[derive(Debug, thiserror::Error)]
pub enum DeviceFilterError {
    #[error("container {container}: device {path}")]
    Stat {
        container: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("container {container}: {path} is not a character or block device")]
    NotADevice { container: String, path: PathBuf },
    #[error(
        "container {container}: no cgroup to attach its device filter to ({reason}); refusing to run it with \
         every device of the host open"
    )]
    NoCgroup { container: String, reason: String },
    #[error("container {container}: loading its device filter (BPF_PROG_TYPE_CGROUP_DEVICE){log}")]
    Load {
        container: String,
        log: String,
        #[source]
        source: io::Error,
    },
    #[error("container {container}: attaching its device filter to cgroup {path}")]
    Attach {
        container: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// `rwm` letters as `ACCESS_*` bits (keel-config has checked them).
pub fn access_bits(permissions: &str) -> u32 {
    permissions.chars().fold(0, |bits, letter| match letter {
        'r' => bits | ACCESS_READ,
        'w' => bits | ACCESS_WRITE,
        'm' => bits | ACCESS_MKNOD,
        _ => bits,
    })
}

/// glibc's `major()`/`minor()` for a 64-bit `dev_t`.
pub fn split_device_number(rdev: u64) -> (u32, u32) {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    (major as u32, minor as u32)
}

/// The rule for the host device node at `path` (symlinks followed, as Docker does) with `access`.
pub fn rule_for_node(container: &str, path: &Path, access: u32) -> Result<DeviceRule, DeviceFilterError> {
    let metadata = fs::metadata(path).map_err(|source| DeviceFilterError::Stat {
        container: container.to_owned(),
        path: path.to_owned(),
        source,
    })?;
    let kind = if metadata.file_type().is_char_device() {
        DeviceType::Char
    } else if metadata.file_type().is_block_device() {
        DeviceType::Block
    } else {
        return Err(DeviceFilterError::NotADevice { container: container.to_owned(), path: path.to_owned() });
    };
    let (major, minor) = split_device_number(metadata.rdev());
    Ok(DeviceRule { kind, major: Some(major), minor: Some(minor), access })
}

/// The container's rules: everything if privileged, else Docker's defaults plus each `devices` entry with its
/// permissions.
pub fn container_rules(name: &str, config: &ContainerConfig) -> Result<Vec<DeviceRule>, DeviceFilterError> {
    if config.privileged {
        return Ok(vec![ALLOW_ALL]);
    }
    let mut rules = DOCKER_DEFAULT_RULES.to_vec();
    for device in &config.devices {
        rules.push(rule_for_node(name, Path::new(&device.host), access_bits(&device.permissions))?);
    }
    Ok(rules)
}

/// The instructions that test one rule, jumping to the next rule's first instruction on a mismatch.
fn rule_block(rule: &DeviceRule) -> Vec<Instruction> {
    // Each check is a jump over the rest of the block; the offsets are filled in once its length is known.
    enum Check {
        Type(i32),
        Access(u32),
        Major(u32),
        Minor(u32),
    }
    let mut checks = Vec::new();
    match rule.kind {
        DeviceType::Char => checks.push(Check::Type(DEV_CHAR)),
        DeviceType::Block => checks.push(Check::Type(DEV_BLOCK)),
        DeviceType::All => {}
    }
    if rule.access & ACCESS_ALL != ACCESS_ALL {
        checks.push(Check::Access(rule.access & ACCESS_ALL));
    }
    if let Some(major) = rule.major {
        checks.push(Check::Major(major));
    }
    if let Some(minor) = rule.minor {
        checks.push(Check::Minor(minor));
    }
    let length: usize =
        checks.iter().map(|check| if matches!(check, Check::Access(_)) { 3 } else { 1 }).sum::<usize>() + 2;
    let mut block = Vec::with_capacity(length);
    // Instructions from the one after `at` to the end of the block.
    let skip = |at: usize| (length - at - 1) as i16;
    for check in checks {
        match check {
            Check::Type(kind) => block.push(Instruction::jump_if_not_immediate(Reg::R2, kind, skip(block.len()))),
            Check::Access(allowed) => {
                // (requested & allowed) == requested: nothing asked for lies outside the rule.
                block.push(Instruction::move_register(Reg::R1, Reg::R3));
                block.push(Instruction::and_immediate(Reg::R1, allowed as i32));
                block.push(Instruction::jump_if_not_register(Reg::R1, Reg::R3, skip(block.len())));
            }
            Check::Major(major) => {
                block.push(Instruction::jump_if_not_immediate(Reg::R4, major as i32, skip(block.len())))
            }
            Check::Minor(minor) => {
                block.push(Instruction::jump_if_not_immediate(Reg::R5, minor as i32, skip(block.len())))
            }
        }
    }
    block.push(Instruction::move_immediate(Reg::R0, 1));
    block.push(Instruction::exit());
    block
}

/// The whole program: read the context into R2 (type), R3 (access), R4 (major), R5 (minor), test each rule,
/// deny when none matched.
pub fn compile(rules: &[DeviceRule]) -> Vec<Instruction> {
    let mut program = vec![
        Instruction::load_word(Reg::R2, Reg::R1, 0),
        Instruction::and_immediate(Reg::R2, 0xffff),
        Instruction::load_word(Reg::R3, Reg::R1, 0),
        Instruction::shift_right(Reg::R3, 16),
        Instruction::load_word(Reg::R4, Reg::R1, 4),
        Instruction::load_word(Reg::R5, Reg::R1, 8),
    ];
    for rule in rules {
        let block = rule_block(rule);
        let unconditional = block.len() == 2;
        program.extend(block);
        // The verifier refuses unreachable instructions: nothing may follow a rule that matches everything.
        if unconditional {
            return program;
        }
    }
    program.push(Instruction::move_immediate(Reg::R0, 0));
    program.push(Instruction::exit());
    program
}

/// Loads the program for `rules` and attaches it to `cgroup`, before any process of the container joins it.
/// A non-privileged container without a cgroup is refused: it would run with every device open. A privileged
/// one may do anything anyway; its cgroup (if any) still gets the allow-all program, which replaces a filter
/// left on a reused leaf.
pub fn install(
    name: &str,
    rules: &[DeviceRule],
    cgroup: Result<Option<&ContainerCgroup>, String>,
) -> Result<(), DeviceFilterError> {
    let everything = rules.contains(&ALLOW_ALL);
    let cgroup = match cgroup {
        Ok(Some(cgroup)) => cgroup,
        Ok(None) if everything => return Ok(()),
        Err(_) if everything => return Ok(()),
        Ok(None) => {
            return Err(DeviceFilterError::NoCgroup {
                container: name.to_owned(),
                reason: "no cgroup2 hierarchy is configured".to_owned(),
            })
        }
        Err(reason) => return Err(DeviceFilterError::NoCgroup { container: name.to_owned(), reason }),
    };
    let program = bpf::load_device_program(&compile(rules)).map_err(|failure| DeviceFilterError::Load {
        container: name.to_owned(),
        log: if failure.verifier_log.is_empty() { String::new() } else { format!(": {}", failure.verifier_log) },
        source: failure.error,
    })?;
    let attach_error =
        |source| DeviceFilterError::Attach { container: name.to_owned(), path: cgroup.path.clone(), source };
    let directory = fs::File::open(&cgroup.path).map_err(attach_error)?;
    bpf::attach_device_program(directory.as_fd(), program.as_fd()).map_err(attach_error)
    // The cgroup holds the program from here on; closing our fds does not detach it.
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `program` the way the kernel would on one access: a small interpreter for the instructions
    /// [`compile`] emits, so the rule semantics are tested without root.
    fn run(program: &[Instruction], kind: i32, access: u32, major: u32, minor: u32) -> u64 {
        let context = [(access << 16) | kind as u32, major, minor];
        let mut registers = [0u64; 6];
        let mut pc = 0usize;
        loop {
            let instruction = program[pc];
            let bytes = instruction.to_bytes();
            let (code, dst, src) = (bytes[0], usize::from(bytes[1] & 0xf), usize::from(bytes[1] >> 4));
            let offset = i16::from_le_bytes([bytes[2], bytes[3]]);
            let immediate = i32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
            pc += 1;
            match code {
                0x61 => registers[dst] = u64::from(context[offset as usize / 4]),
                0x54 => registers[dst] = (registers[dst] as u32 & immediate as u32) as u64,
                0x74 => registers[dst] = ((registers[dst] as u32) >> immediate) as u64,
                0xbc => registers[dst] = registers[src] as u32 as u64,
                0xb4 => registers[dst] = immediate as u32 as u64,
                0x55 if registers[dst] != immediate as i64 as u64 => pc += offset as usize,
                0x5d if registers[dst] != registers[src] => pc += offset as usize,
                0x55 | 0x5d => {}
                0x95 => return registers[0],
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    const C: i32 = DEV_CHAR;
    const B: i32 = DEV_BLOCK;

    #[test]
    fn docker_defaults_allow_the_standard_nodes_and_mknod_only() {
        let program = compile(&DOCKER_DEFAULT_RULES);
        for (major, minor) in [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2), (136, 0), (136, 42)] {
            assert_eq!(run(&program, C, ACCESS_READ | ACCESS_WRITE, major, minor), 1, "c {major}:{minor}");
        }
        // The host's disk (virtio 254:0, loop 7:0): mknod yes, read and write no.
        for (kind, major, minor) in [(B, 254, 0), (B, 7, 0), (B, 8, 0)] {
            assert_eq!(run(&program, kind, ACCESS_MKNOD, major, minor), 1);
            assert_eq!(run(&program, kind, ACCESS_READ, major, minor), 0);
            assert_eq!(run(&program, kind, ACCESS_WRITE, major, minor), 0);
        }
        // tun, fuse, /dev/mem, /dev/kmsg: not in Docker's list.
        for (major, minor) in [(10, 200), (10, 229), (1, 1), (1, 11)] {
            assert_eq!(run(&program, C, ACCESS_READ, major, minor), 0, "c {major}:{minor}");
        }
        // Block 1:3 is not char 1:3.
        assert_eq!(run(&program, B, ACCESS_READ, 1, 3), 0);
    }

    #[test]
    fn configured_devices_get_exactly_their_permissions() {
        let mut rules = DOCKER_DEFAULT_RULES.to_vec();
        rules.push(DeviceRule { kind: DeviceType::Block, major: Some(7), minor: Some(3), access: access_bits("r") });
        let program = compile(&rules);
        assert_eq!(run(&program, B, ACCESS_READ, 7, 3), 1);
        assert_eq!(run(&program, B, ACCESS_WRITE, 7, 3), 0);
        assert_eq!(run(&program, B, ACCESS_READ | ACCESS_WRITE, 7, 3), 0, "O_RDWR asks for both");
        assert_eq!(run(&program, B, ACCESS_READ, 7, 4), 0);
        assert_eq!(access_bits("rwm"), ACCESS_ALL);
        assert_eq!(access_bits("wm"), ACCESS_WRITE | ACCESS_MKNOD);
    }

    #[test]
    fn allow_all_is_a_single_return() {
        let program = compile(&[ALLOW_ALL]);
        assert_eq!(program.len(), 6 + 2);
        assert_eq!(compile(&[ALLOW_ALL, DOCKER_DEFAULT_RULES[2]]), program, "nothing after a match-all");
        assert_eq!(run(&program, B, ACCESS_ALL, 254, 0), 1);
        assert_eq!(run(&program, C, ACCESS_READ, 10, 229), 1);
        assert_eq!(run(&compile(&[]), C, ACCESS_READ, 1, 3), 0, "no rules deny everything");
    }

    #[test]
    fn jumps_land_on_the_next_rule() {
        let block = rule_block(&DeviceRule { kind: DeviceType::Block, major: Some(7), minor: None, access: 2 });
        // type, access (3), major, return 1, exit.
        assert_eq!(block.len(), 1 + 3 + 1 + 2);
        assert_eq!(block[0], Instruction::jump_if_not_immediate(Reg::R2, B, 6));
        assert_eq!(block[3], Instruction::jump_if_not_register(Reg::R1, Reg::R3, 3));
        assert_eq!(block[4], Instruction::jump_if_not_immediate(Reg::R4, 7, 2));
    }

    #[test]
    fn device_numbers_split_like_glibc() {
        assert_eq!(split_device_number(0xfe00), (254, 0));
        assert_eq!(split_device_number(0x0703), (7, 3));
        // Minor above 255: loop 7:300 is 0x12c → low byte 0x2c, high bits at 20.
        assert_eq!(split_device_number((7 << 8) | 0x2c | (1 << 20)), (7, 300));
    }
}
