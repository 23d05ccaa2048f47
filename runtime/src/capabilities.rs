//! Computes a container's capability set: Docker's default ± `cap_add`/`cap_drop`, or everything if privileged.

use keel_config::values::capability::Capability;

/// Docker's default set (moby `oci/caps/defaults.go`), by number.
pub const DOCKER_DEFAULT: [u32; 14] = [
    0,  // CHOWN
    1,  // DAC_OVERRIDE
    3,  // FOWNER
    4,  // FSETID
    5,  // KILL
    6,  // SETGID
    7,  // SETUID
    8,  // SETPCAP
    10, // NET_BIND_SERVICE
    13, // NET_RAW
    18, // SYS_CHROOT
    27, // MKNOD
    29, // AUDIT_WRITE
    31, // SETFCAP
];

pub const CAP_SYS_ADMIN: u32 = 21;
/// Raising a hard rlimit needs it.
pub const CAP_SYS_RESOURCE: u32 = 24;

/// The highest capability the running kernel knows (`/proc/sys/kernel/cap_last_cap`), 40 if unreadable.
pub fn last_capability() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(40)
}

/// The supervisor's own permitted set (`CapPrm` of /proc/self/status): a container cannot get more, and asking
/// for more makes capset fail. All ones if unreadable.
pub fn own_permitted() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("CapPrm:"))?;
            u64::from_str_radix(line.trim_start_matches("CapPrm:").trim(), 16).ok()
        })
        .unwrap_or(u64::MAX)
}

/// The set as a bit mask (bit N = capability N), following moby's `TweakCapabilities`: `ALL` in `cap_add`
/// means every capability except the dropped ones; `ALL` in `cap_drop` means only the added ones; otherwise the
/// default set less the dropped ones plus the added ones.
pub fn capability_mask(privileged: bool, add: &[Capability], drop: &[Capability], last: u32) -> u64 {
    let all: u64 = if last >= 63 { u64::MAX } else { (1u64 << (last + 1)) - 1 };
    let bits = |list: &[Capability]| {
        list.iter().fold(0u64, |mask, capability| match capability {
            Capability::All => all,
            Capability::Number(number) if u32::from(*number) <= last => mask | (1u64 << number),
            Capability::Number(_) => mask,
        })
    };
    if privileged {
        return all;
    }
    let is_all = |list: &[Capability]| list.contains(&Capability::All);
    if is_all(add) {
        return all & !bits(drop);
    }
    if is_all(drop) {
        return bits(add);
    }
    // Drops first, then adds: a capability in both lists is kept, as moby does.
    let default = DOCKER_DEFAULT.iter().fold(0u64, |mask, number| mask | (1u64 << number));
    ((default & !bits(drop)) | bits(add)) & all
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET_ADMIN: Capability = Capability::Number(12);
    const MKNOD: Capability = Capability::Number(27);

    #[test]
    fn default_is_dockers_and_has_no_sys_admin() {
        let mask = capability_mask(false, &[], &[], 40);
        assert_eq!(mask.count_ones(), 14);
        assert_eq!(mask, 0xa80425fb);
        assert_eq!(mask & (1 << CAP_SYS_ADMIN), 0);
    }

    #[test]
    fn add_and_drop_adjust_the_default() {
        let mask = capability_mask(false, &[NET_ADMIN], &[MKNOD], 40);
        assert_ne!(mask & (1 << 12), 0);
        assert_eq!(mask & (1 << 27), 0);
        assert_eq!(capability_mask(false, &[NET_ADMIN], &[Capability::All], 40), 1 << 12);
        let both = capability_mask(false, &[NET_ADMIN, MKNOD], &[NET_ADMIN, MKNOD], 40);
        assert_eq!(both, 0xa80425fb | (1 << 12), "in both lists: kept, as moby drops before it adds");
        assert_eq!(capability_mask(false, &[Capability::All], &[MKNOD], 40), ((1u64 << 41) - 1) & !(1 << 27));
    }

    #[test]
    fn privileged_gets_every_capability_the_kernel_knows() {
        assert_eq!(capability_mask(true, &[], &[Capability::All], 40), (1u64 << 41) - 1);
    }
}
