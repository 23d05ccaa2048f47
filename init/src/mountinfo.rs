//! `/proc/self/mountinfo`, read into the list of mounts the shutdown takes down in reverse.

/// One line of mountinfo: where, what type, from which source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_point: String,
    pub fstype: String,
    pub source: String,
}

impl MountEntry {
    /// Backed by a block device: the mounts whose data a power cut could lose.
    pub fn is_block_backed(&self) -> bool {
        self.source.starts_with("/dev/")
    }
}

/// Reads the calling process's mounts, in mount order; empty when /proc is gone.
pub fn read_mounts() -> Vec<MountEntry> {
    std::fs::read_to_string("/proc/self/mountinfo").map(|text| parse_mountinfo(&text)).unwrap_or_default()
}

/// Parses mountinfo text; lines that do not have the documented shape are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<MountEntry> {
    // id parent major:minor root mount-point options [optional fields…] - fstype source super-options
    let (before, after) = line.split_once(" - ")?;
    let mount_point = before.split(' ').nth(4)?;
    let mut after = after.split(' ');
    let fstype = after.next()?;
    let source = after.next()?;
    Some(MountEntry { mount_point: unescape(mount_point), fstype: fstype.to_owned(), source: unescape(source) })
}

/// The kernel writes space, tab, newline and backslash as `\040`-style octal escapes.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let octal = bytes.get(index + 1..index + 4).filter(|digits| digits.iter().all(|d| (b'0'..=b'7').contains(d)));
        match (bytes[index], octal) {
            (b'\\', Some(digits)) => {
                out.push(digits.iter().fold(0u8, |value, digit| value.wrapping_mul(8) + (digit - b'0')));
                index += 4;
            }
            (byte, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_with_optional_fields_and_escapes() {
        let text = "\
22 1 254:2 / / ro,relatime shared:1 - erofs /dev/vda2 ro,user_xattr
23 22 0:21 / /proc rw,nosuid,nodev,noexec - proc proc rw
40 22 254:4 / /var/my\\040data rw,noatime shared:9 master:2 - ext4 /dev/vda4 rw,errors=remount-ro
broken line
";
        let mounts = parse_mountinfo(text);
        assert_eq!(mounts.len(), 3);
        assert_eq!(
            mounts[0],
            MountEntry { mount_point: "/".into(), fstype: "erofs".into(), source: "/dev/vda2".into() }
        );
        assert!(!mounts[1].is_block_backed());
        assert_eq!(mounts[2].mount_point, "/var/my data");
        assert!(mounts[2].is_block_backed());
    }
}
