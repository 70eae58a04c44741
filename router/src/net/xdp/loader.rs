//! Loads router/bpf/corecast_xdp.c's object (built by router/build.rs) and
//! attaches it to an interface, with the `bpf` system call only (no libbpf).
//!
//! The object is read as ELF64: the maps of its `maps` section (the C file's
//! `struct cc_map`: type, key size, value size, max entries) are created, the
//! program's `ld_imm64` map references (relocations `R_BPF_64_64` in
//! `.relxdp`) are patched to those maps' file descriptors, and the program is
//! loaded and attached with a BPF link (`BPF_LINK_CREATE`, `BPF_XDP`): native
//! mode first, generic (skb) mode if the driver refuses.
//!
//! A link lives as long as its file descriptor: when the router exits, or
//! crashes, the kernel detaches the program. A `corecast_xdp` program
//! attached the old way (netlink, which outlives its process) is detached at
//! the next start; any other program makes the attach fail with `EBUSY`, and
//! [`Attachment::attach`] says so and how to clear it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The program, built by router/build.rs (empty if clang was missing).
static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/corecast_xdp.o"));

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const BPF_PSEUDO_MAP_FD: u8 = 1;
/// `XDP_FLAGS_SKB_MODE`: generic XDP (in the kernel's receive path, any driver).
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
/// `XDP_FLAGS_DRV_MODE`: native XDP (in the driver).
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
const R_BPF_64_64: u32 = 1;
const SHT_SYMTAB: u32 = 2;

/// Where the program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    /// In the driver (native XDP).
    Native,
    /// In the kernel's generic receive path (any driver; slower, copy mode only).
    Generic,
}

/// One `bpf` system call with `attr` (a `union bpf_attr` prefix; the rest is zero).
fn bpf(cmd: libc::c_long, attr: &mut [u8; 128]) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is 128 live, writable bytes laid out as the prefix of
    // `union bpf_attr` that `cmd` reads; any pointers written into it point to
    // memory the caller keeps alive across this call; the kernel reads at most
    // the size passed.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len() as libc::c_uint) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn put_u32(attr: &mut [u8; 128], at: usize, v: u32) {
    attr[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put_u64(attr: &mut [u8; 128], at: usize, v: u64) {
    attr[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

/// A file descriptor returned by `bpf`, owned.
fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful `bpf` call that creates a
    // new descriptor; nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

/// A BPF map.
#[derive(Debug)]
pub struct Map {
    fd: OwnedFd,
    name: String,
}

impl Map {
    fn create(name: &str, def: [u32; 4]) -> io::Result<Map> {
        let mut attr = [0u8; 128];
        for (i, v) in def.iter().enumerate() {
            put_u32(&mut attr, i * 4, *v);
        }
        // map_name (16 bytes at offset 28), NUL-terminated.
        let n = name.len().min(15);
        attr[28..28 + n].copy_from_slice(&name.as_bytes()[..n]);
        let fd = bpf(BPF_MAP_CREATE, &mut attr)
            .map_err(|e| io::Error::new(e.kind(), format!("creating XDP map {name}: {e}")))?;
        Ok(Map { fd: owned(fd), name: name.to_string() })
    }

    /// Sets `key` to `value` (both `u32`).
    pub fn set(&self, key: u32, value: u32) -> io::Result<()> {
        let mut attr = [0u8; 128];
        put_u32(&mut attr, 0, self.fd.as_raw_fd() as u32);
        put_u64(&mut attr, 8, &key as *const u32 as u64);
        put_u64(&mut attr, 16, &value as *const u32 as u64);
        bpf(BPF_MAP_UPDATE_ELEM, &mut attr)
            .map(drop)
            .map_err(|e| io::Error::new(e.kind(), format!("XDP map {} [{key}] = {value}: {e}", self.name)))
    }

    /// Removes `key` (an XSKMAP entry); a missing key is not an error.
    pub fn delete(&self, key: u32) {
        let mut attr = [0u8; 128];
        put_u32(&mut attr, 0, self.fd.as_raw_fd() as u32);
        put_u64(&mut attr, 8, &key as *const u32 as u64);
        let _ = bpf(BPF_MAP_DELETE_ELEM, &mut attr);
    }
}

/// The program attached to one interface, with its maps.
#[derive(Debug)]
pub struct Attachment {
    /// Interface index.
    pub ifindex: u32,
    /// Native or generic.
    pub mode: XdpMode,
    /// Queue index -> AF_XDP socket.
    pub xsks: Map,
    /// UDP port -> queue index + 1.
    pub ports: Map,
    _prog: OwnedFd,
    _link: OwnedFd,
}

impl Attachment {
    /// Loads the program and attaches it to `ifindex` (`ifname` for messages).
    /// `generic_only` skips the native attempt.
    pub fn attach(ifindex: u32, ifname: &str, generic_only: bool) -> io::Result<Attachment> {
        if OBJECT.is_empty() {
            let why = option_env!("CORECAST_XDP_BUILD_ERROR").unwrap_or("empty object");
            return Err(io::Error::new(io::ErrorKind::Unsupported, format!("XDP program not built: {why}")));
        }
        let obj = Object::parse(OBJECT).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let mut xsks = None;
        let mut ports = None;
        let mut fds = Vec::new();
        for (name, def) in &obj.maps {
            let m = Map::create(name, *def)?;
            fds.push((name.clone(), m.fd.as_raw_fd()));
            match name.as_str() {
                "xsks" => xsks = Some(m),
                "ports" => ports = Some(m),
                _ => {}
            }
        }
        let (Some(xsks), Some(ports)) = (xsks, ports) else {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "XDP object lacks the xsks or ports map"));
        };
        let mut insns = obj.insns.clone();
        for (at, map) in &obj.relocs {
            let fd = fds.iter().find(|(n, _)| n == map).map(|(_, fd)| *fd).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, format!("XDP relocation to unknown map {map}"))
            })?;
            let i = at * 8;
            insns[i + 1] = (insns[i + 1] & 0x0f) | (BPF_PSEUDO_MAP_FD << 4);
            insns[i + 4..i + 8].copy_from_slice(&(fd as u32).to_ne_bytes());
        }
        let prog = load(&insns, &obj.license)?;
        let mut refusals = Vec::new();
        let modes: &[(XdpMode, u32)] = if generic_only {
            &[(XdpMode::Generic, XDP_FLAGS_SKB_MODE)]
        } else {
            &[(XdpMode::Native, XDP_FLAGS_DRV_MODE), (XdpMode::Generic, XDP_FLAGS_SKB_MODE)]
        };
        let mut stale_cleared = false;
        let mut i = 0;
        'modes: while let Some(&(mode, flags)) = modes.get(i) {
            let mut attr = [0u8; 128];
            put_u32(&mut attr, 0, prog.as_raw_fd() as u32);
            put_u32(&mut attr, 4, ifindex);
            put_u32(&mut attr, 8, BPF_XDP);
            put_u32(&mut attr, 12, flags);
            match bpf(BPF_LINK_CREATE, &mut attr) {
                Ok(fd) => {
                    return Ok(Attachment { ifindex, mode, xsks, ports, _prog: prog, _link: owned(fd) });
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::EEXIST)) && !stale_cleared => {
                    stale_cleared = true;
                    if detach_stale(ifindex, ifname) {
                        continue 'modes;
                    }
                    return Err(io::Error::new(
                        e.kind(),
                        format!(
                            "another XDP program is attached to {ifname} ({e}); \
                             if it is a stale one, `ip link set dev {ifname} xdp off` removes it"
                        ),
                    ));
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::EEXIST)) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("another XDP program is attached to {ifname} ({e}), held by a live process"),
                    ));
                }
                Err(e) => refusals.push(format!("{mode:?}: {e}")),
            }
            i += 1;
        }
        Err(io::Error::other(format!("{ifname} refused the XDP program ({})", refusals.join("; "))))
    }
}

/// When the program attached to `ifindex` is a `corecast_xdp` attached the
/// old way (netlink, e.g. by a crashed run of an older router), detaches it
/// and says so; true if it did. A program held by a live BPF link (another
/// router running) cannot be detached this way: the kernel refuses.
fn detach_stale(ifindex: u32, ifname: &str) -> bool {
    let Ok(mut rtnl) = super::rtnl::Rtnl::open() else { return false };
    let id = match rtnl.xdp_prog_id(ifindex) {
        Ok(id) if id != 0 => id,
        _ => return false,
    };
    if prog_name(id).as_deref() != Some("corecast_xdp") {
        return false;
    }
    for flags in [XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE] {
        if rtnl.detach_xdp(ifindex, flags).is_ok() && rtnl.xdp_prog_id(ifindex).is_ok_and(|id| id == 0) {
            tracing::warn!(ifname, prog_id = id, "detached a stale corecast XDP program left by an earlier run");
            return true;
        }
    }
    false
}

/// The name of BPF program `id` (`BPF_PROG_GET_FD_BY_ID`, `BPF_OBJ_GET_INFO_BY_FD`).
fn prog_name(id: u32) -> Option<String> {
    const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
    const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    let mut attr = [0u8; 128];
    put_u32(&mut attr, 0, id);
    let fd = owned(bpf(BPF_PROG_GET_FD_BY_ID, &mut attr).ok()?);
    // struct bpf_prog_info: the name is 16 bytes at offset 64.
    let mut info = [0u8; 128];
    let mut attr = [0u8; 128];
    put_u32(&mut attr, 0, fd.as_raw_fd() as u32);
    put_u32(&mut attr, 4, info.len() as u32);
    put_u64(&mut attr, 8, info.as_mut_ptr() as u64);
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr).ok()?;
    let name = &info[64..80];
    Some(String::from_utf8_lossy(&name[..name.iter().position(|&c| c == 0).unwrap_or(16)]).into_owned())
}

/// `BPF_PROG_LOAD`; on refusal, loads again with the verifier's log for the error.
fn load(insns: &[u8], license: &[u8]) -> io::Result<OwnedFd> {
    let mut log = Vec::new();
    loop {
        let mut attr = [0u8; 128];
        put_u32(&mut attr, 0, BPF_PROG_TYPE_XDP);
        put_u32(&mut attr, 4, (insns.len() / 8) as u32);
        put_u64(&mut attr, 8, insns.as_ptr() as u64);
        put_u64(&mut attr, 16, license.as_ptr() as u64);
        if !log.is_empty() {
            put_u32(&mut attr, 24, 1);
            put_u32(&mut attr, 28, log.len() as u32);
            put_u64(&mut attr, 32, log.as_mut_ptr() as u64);
        }
        attr[48..48 + 12].copy_from_slice(b"corecast_xdp");
        match bpf(BPF_PROG_LOAD, &mut attr) {
            Ok(fd) => return Ok(owned(fd)),
            Err(e) if log.is_empty() && e.raw_os_error() != Some(libc::EPERM) => {
                log = vec![0u8; 1 << 16];
            }
            Err(e) => {
                let text = String::from_utf8_lossy(&log);
                let text = text.trim_end_matches('\0').trim();
                let hint =
                    if e.raw_os_error() == Some(libc::EPERM) { " (needs root or CAP_BPF + CAP_NET_ADMIN)" } else { "" };
                return Err(io::Error::new(e.kind(), format!("the kernel refused the XDP program: {e}{hint}; {text}")));
            }
        }
    }
}

/// What the loader needs from the ELF object.
#[derive(Debug)]
struct Object {
    insns: Vec<u8>,
    license: Vec<u8>,
    /// (name, [type, key size, value size, max entries])
    maps: Vec<(String, [u32; 4])>,
    /// (instruction index, map name)
    relocs: Vec<(usize, String)>,
}

struct Section<'a> {
    name: &'a str,
    kind: u32,
    link: u32,
    data: &'a [u8],
}

fn rd16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn rd32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn rd64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}
fn cstr(b: &[u8], at: usize) -> Option<&str> {
    let rest = b.get(at..)?;
    let end = rest.iter().position(|&c| c == 0)?;
    std::str::from_utf8(&rest[..end]).ok()
}

impl Object {
    /// Parses a little-endian ELF64 BPF object; any inconsistency is an error, not a panic.
    fn parse(b: &[u8]) -> Result<Object, String> {
        let bad = || "malformed XDP object".to_string();
        if b.get(..4) != Some(b"\x7fELF") || b.get(4) != Some(&2) || b.get(5) != Some(&1) {
            return Err("XDP object is not a little-endian ELF64 file".into());
        }
        let shoff = rd64(b, 0x28).ok_or_else(bad)? as usize;
        let shentsize = rd16(b, 0x3a).ok_or_else(bad)? as usize;
        let shnum = rd16(b, 0x3c).ok_or_else(bad)? as usize;
        let shstrndx = rd16(b, 0x3e).ok_or_else(bad)? as usize;
        let header = |i: usize| -> Option<(u32, u32, &[u8], u32, u32)> {
            let h = shoff.checked_add(i.checked_mul(shentsize)?)?;
            let (name, kind) = (rd32(b, h)?, rd32(b, h + 4)?);
            let (off, size) = (rd64(b, h + 24)? as usize, rd64(b, h + 32)? as usize);
            let data = if kind == 8 { &[][..] } else { b.get(off..off.checked_add(size)?)? };
            Some((name, kind, data, rd32(b, h + 40)?, rd32(b, h + 44)?))
        };
        let shstr = header(shstrndx).ok_or_else(bad)?.2;
        let mut secs = Vec::with_capacity(shnum);
        for i in 0..shnum {
            let (name, kind, data, link, _) = header(i).ok_or_else(bad)?;
            secs.push(Section { name: cstr(shstr, name as usize).ok_or_else(bad)?, kind, link, data });
        }
        let find = |n: &str| secs.iter().position(|s| s.name == n);
        let prog = find("xdp").ok_or("XDP object has no xdp section")?;
        let maps_sec = find("maps").ok_or("XDP object has no maps section")?;
        let symtab = secs.iter().position(|s| s.kind == SHT_SYMTAB).ok_or("XDP object has no symbols")?;
        let strtab = secs.get(secs[symtab].link as usize).ok_or_else(bad)?.data;
        let syms = secs[symtab].data;
        let sym = |i: usize| -> Option<(&str, u16, u64)> {
            let s = i.checked_mul(24)?;
            Some((cstr(strtab, rd32(syms, s)? as usize)?, rd16(syms, s + 6)?, rd64(syms, s + 8)?))
        };
        let mut maps = Vec::new();
        for i in 0..syms.len() / 24 {
            let (name, shndx, value) = sym(i).ok_or_else(bad)?;
            if shndx as usize == maps_sec && !name.is_empty() {
                let d = secs[maps_sec].data;
                let v = value as usize;
                let def = [rd32(d, v), rd32(d, v + 4), rd32(d, v + 8), rd32(d, v + 12)];
                let [Some(t), Some(k), Some(vs), Some(m)] = def else { return Err(bad()) };
                maps.push((name.to_string(), [t, k, vs, m]));
            }
        }
        let mut relocs = Vec::new();
        if let Some(rel) = find(".relxdp") {
            let r = secs[rel].data;
            for i in 0..r.len() / 16 {
                let off = rd64(r, i * 16).ok_or_else(bad)? as usize;
                let info = rd64(r, i * 16 + 8).ok_or_else(bad)?;
                if info as u32 != R_BPF_64_64 {
                    return Err(format!("XDP object has an unsupported relocation type {}", info as u32));
                }
                let (name, shndx, _) = sym((info >> 32) as usize).ok_or_else(bad)?;
                if shndx as usize != maps_sec || !off.is_multiple_of(8) || off + 16 > secs[prog].data.len() {
                    return Err(format!("XDP relocation at {off} is not a map load"));
                }
                relocs.push((off / 8, name.to_string()));
            }
        }
        let license = find("license").map(|i| secs[i].data.to_vec()).unwrap_or_else(|| b"GPL\0".to_vec());
        let insns = secs[prog].data.to_vec();
        if insns.is_empty() || !insns.len().is_multiple_of(8) {
            return Err(bad());
        }
        Ok(Object { insns, license, maps, relocs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_object_parses_with_both_maps_and_their_loads() {
        if OBJECT.is_empty() {
            return; // built without clang; the backend says so at start
        }
        let o = Object::parse(OBJECT).unwrap();
        let names: Vec<_> = o.maps.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"xsks") && names.contains(&"ports"), "{names:?}");
        assert_eq!(o.relocs.len(), 2);
        for (at, _) in &o.relocs {
            assert_eq!(o.insns[at * 8], 0x18, "relocation on an ld_imm64");
        }
    }

    #[test]
    fn truncated_or_garbage_objects_are_refused_without_panicking() {
        for n in [0, 4, 16, 64, OBJECT.len() / 2] {
            let _ = Object::parse(&OBJECT[..n.min(OBJECT.len())]);
        }
        let mut junk = OBJECT.to_vec();
        for (i, b) in junk.iter_mut().enumerate().skip(0x28) {
            *b ^= (i * 7) as u8;
        }
        let _ = Object::parse(&junk);
        assert!(Object::parse(b"not an elf file at all").is_err());
    }
}
