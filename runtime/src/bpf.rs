//! A tiny eBPF assembler and the `bpf(2)` calls that load a cgroup device program and attach it to a cgroup.
//!
//! Only what a `BPF_PROG_TYPE_CGROUP_DEVICE` filter needs: 32-bit loads from the context, a few 32-bit ALU
//! operations, "jump if not equal" and exit. These calls run in the supervisor (parent) before the container's
//! first process exists, so unlike [`super::sys`] they may allocate.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use libc::c_int;

const BPF_PROG_LOAD: c_int = 5;
const BPF_PROG_ATTACH: c_int = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
/// `enum bpf_attach_type`'s `BPF_CGROUP_DEVICE`.
const BPF_CGROUP_DEVICE: u32 = 6;

// Opcode parts (include/uapi/linux/bpf_common.h, bpf.h).
const CLASS_LDX: u8 = 0x01;
const CLASS_ALU: u8 = 0x04;
const CLASS_JMP: u8 = 0x05;
const SIZE_W: u8 = 0x00;
const MODE_MEM: u8 = 0x60;
const SOURCE_K: u8 = 0x00;
const SOURCE_X: u8 = 0x08;
const OP_AND: u8 = 0x50;
const OP_RSH: u8 = 0x70;
const OP_MOV: u8 = 0xb0;
const OP_JNE: u8 = 0x50;
const OP_EXIT: u8 = 0x90;

/// An eBPF register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Reg {
    R0 = 0,
    R1,
    R2,
    R3,
    R4,
    R5,
}

/// One eBPF instruction, laid out as the kernel's `struct bpf_insn` (x86-64 and other little-endian targets:
/// the destination register is the low nibble of the second byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Instruction {
    code: u8,
    registers: u8,
    offset: i16,
    immediate: i32,
}

impl Instruction {
    fn new(code: u8, dst: Reg, src: Reg, offset: i16, immediate: i32) -> Instruction {
        Instruction { code, registers: ((src as u8) << 4) | dst as u8, offset, immediate }
    }

    /// `dst = *(u32 *)(src + offset)`.
    pub fn load_word(dst: Reg, src: Reg, offset: i16) -> Instruction {
        Instruction::new(CLASS_LDX | SIZE_W | MODE_MEM, dst, src, offset, 0)
    }

    /// `dst = (u32)dst & immediate`.
    pub fn and_immediate(dst: Reg, immediate: i32) -> Instruction {
        Instruction::new(CLASS_ALU | OP_AND | SOURCE_K, dst, Reg::R0, 0, immediate)
    }

    /// `dst = (u32)dst >> immediate`.
    pub fn shift_right(dst: Reg, immediate: i32) -> Instruction {
        Instruction::new(CLASS_ALU | OP_RSH | SOURCE_K, dst, Reg::R0, 0, immediate)
    }

    /// `dst = (u32)src`.
    pub fn move_register(dst: Reg, src: Reg) -> Instruction {
        Instruction::new(CLASS_ALU | OP_MOV | SOURCE_X, dst, src, 0, 0)
    }

    /// `dst = immediate` (32-bit).
    pub fn move_immediate(dst: Reg, immediate: i32) -> Instruction {
        Instruction::new(CLASS_ALU | OP_MOV | SOURCE_K, dst, Reg::R0, 0, immediate)
    }

    /// `if dst != immediate: skip `offset` instructions`.
    pub fn jump_if_not_immediate(dst: Reg, immediate: i32, offset: i16) -> Instruction {
        Instruction::new(CLASS_JMP | OP_JNE | SOURCE_K, dst, Reg::R0, offset, immediate)
    }

    /// `if dst != src: skip `offset` instructions`.
    pub fn jump_if_not_register(dst: Reg, src: Reg, offset: i16) -> Instruction {
        Instruction::new(CLASS_JMP | OP_JNE | SOURCE_X, dst, src, offset, 0)
    }

    /// `return R0`.
    pub fn exit() -> Instruction {
        Instruction::new(CLASS_JMP | OP_EXIT, Reg::R0, Reg::R0, 0, 0)
    }

    /// The 8 bytes the kernel reads (for tests and interpreters).
    pub fn to_bytes(self) -> [u8; 8] {
        let mut out = [0u8; 8];
        out[0] = self.code;
        out[1] = self.registers;
        out[2..4].copy_from_slice(&self.offset.to_le_bytes());
        out[4..8].copy_from_slice(&self.immediate.to_le_bytes());
        out
    }
}

/// The `BPF_PROG_LOAD` member of `union bpf_attr`, up to `expected_attach_type`. The kernel accepts a shorter
/// attr than its own and treats the rest as zero.
#[repr(C, align(8))]
struct ProgramLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The `BPF_PROG_ATTACH` member of `union bpf_attr`; no trailing padding, since the kernel refuses non-zero
/// bytes past the fields it knows.
#[repr(C)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// A failed load, with the verifier's log when it gave one.
#[derive(Debug)]
pub struct LoadFailure {
    pub error: io::Error,
    pub verifier_log: String,
}

fn bpf<T>(command: c_int, attr: &mut T) -> io::Result<c_int> {
    // SAFETY: `attr` is a live, fully initialised #[repr(C)] struct laid out as the member of `union bpf_attr`
    // that `command` reads, and the size passed is exactly its size; any pointers inside it (instructions,
    // license, log buffer) point into memory the caller keeps alive across this call.
    let ret = unsafe { libc::syscall(libc::SYS_bpf, command, attr as *mut T, std::mem::size_of::<T>()) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as c_int)
    }
}

fn load_once(program: &[Instruction], log: &mut [u8]) -> io::Result<OwnedFd> {
    let license = c"GPL";
    let mut name = [0u8; 16];
    name[..11].copy_from_slice(b"keel_device");
    let mut attr = ProgramLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: program.len() as u32,
        insns: program.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: u32::from(!log.is_empty()),
        log_size: log.len() as u32,
        log_buf: if log.is_empty() { 0 } else { log.as_mut_ptr() as u64 },
        kern_version: 0,
        prog_flags: 0,
        prog_name: name,
        prog_ifindex: 0,
        expected_attach_type: 0,
    };
    let fd = bpf(BPF_PROG_LOAD, &mut attr)?;
    // SAFETY: a successful BPF_PROG_LOAD returns a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Loads `program` as a `BPF_PROG_TYPE_CGROUP_DEVICE` program. On failure it loads once more with the verifier's
/// log on, so that the error says why.
pub fn load_device_program(program: &[Instruction]) -> Result<OwnedFd, LoadFailure> {
    load_once(program, &mut []).map_err(|error| {
        let mut log = vec![0u8; 64 * 1024];
        let _ = load_once(program, &mut log);
        let end = log.iter().position(|byte| *byte == 0).unwrap_or(log.len());
        LoadFailure { error, verifier_log: String::from_utf8_lossy(&log[..end]).trim().to_owned() }
    })
}

/// Attaches `program` to the cgroup directory `cgroup` as its device filter. Without `BPF_F_ALLOW_MULTI` the
/// program replaces one attached before (a leftover leaf that is reused), and no descendant can add its own.
pub fn attach_device_program(cgroup: BorrowedFd<'_>, program: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: program.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: 0,
        replace_bpf_fd: 0,
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(instruction: Instruction) -> [u8; 8] {
        instruction.to_bytes()
    }

    #[test]
    fn encodes_like_the_kernel_headers() {
        assert_eq!(std::mem::size_of::<Instruction>(), 8);
        // BPF_LDX_MEM(BPF_W, BPF_REG_2, BPF_REG_1, 4)
        assert_eq!(bytes(Instruction::load_word(Reg::R2, Reg::R1, 4)), [0x61, 0x12, 4, 0, 0, 0, 0, 0]);
        // BPF_JMP_IMM(BPF_JNE, BPF_REG_4, 7, 3)
        assert_eq!(bytes(Instruction::jump_if_not_immediate(Reg::R4, 7, 3)), [0x55, 0x04, 3, 0, 7, 0, 0, 0]);
        // BPF_JMP_REG(BPF_JNE, BPF_REG_1, BPF_REG_3, 2)
        assert_eq!(bytes(Instruction::jump_if_not_register(Reg::R1, Reg::R3, 2)), [0x5d, 0x31, 2, 0, 0, 0, 0, 0]);
        // BPF_MOV32_IMM(BPF_REG_0, 1), BPF_EXIT_INSN()
        assert_eq!(bytes(Instruction::move_immediate(Reg::R0, 1)), [0xb4, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(bytes(Instruction::exit()), [0x95, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(bytes(Instruction::shift_right(Reg::R3, 16))[0], 0x74);
        assert_eq!(bytes(Instruction::and_immediate(Reg::R2, 0xffff))[0], 0x54);
        assert_eq!(bytes(Instruction::move_register(Reg::R1, Reg::R3)), [0xbc, 0x31, 0, 0, 0, 0, 0, 0]);
    }
}
