//! Just enough of the kernel's BTF (`/sys/kernel/btf/vmlinux`) to find where a struct
//! member lives: its byte offset, its size and, for a bitfield, its bits.
//!
//! The layout is the kernel's documented format (Documentation/bpf/btf.rst): a header, a
//! type section of `struct btf_type` records each followed by kind-specific data, and a
//! string section. Type IDs count from 1 in the order the records appear.

use std::collections::HashMap;

use anyhow::{Context as _, bail};

pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

const MAGIC: u16 = 0xeb9f;

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

/// Where a member lives inside the outermost struct of its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    /// Bytes from the start of the struct.
    pub offset: u32,
    /// The member's size in bytes (for a bitfield: of the type it is cut from).
    pub size: u32,
    /// For a bitfield: its first bit, counted from `offset * 8`, and its width.
    pub bits: Option<(u32, u32)>,
    /// What the member is, after typedefs and qualifiers.
    pub kind: Kind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Int,
    Pointer,
    Array { element_size: u32, len: u32 },
    Struct,
    Other,
}

struct Type {
    kind: u32,
    name: u32,
    /// `size` for ints, structs, unions and enums; the referenced type for the others.
    size_or_type: u32,
    kind_flag: bool,
    /// Struct and union members: (name, type, offset word).
    members: Vec<(u32, u32, u32)>,
    /// Arrays: (element type, length).
    array: Option<(u32, u32)>,
    /// Enumerators: (name, value).
    enumerators: Vec<(u32, i64)>,
}

pub struct Btf {
    types: Vec<Type>,
    strings: Vec<u8>,
    structs: HashMap<String, u32>,
}

impl Btf {
    /// The running kernel's types.
    pub fn vmlinux() -> anyhow::Result<Self> {
        let data = std::fs::read(VMLINUX).with_context(|| {
            format!(
                "reading {VMLINUX} failed: handshake needs a kernel built with CONFIG_DEBUG_INFO_BTF (Debian's and Ubuntu's are) to find the listener's settings"
            )
        })?;
        Self::parse(&data).with_context(|| format!("{VMLINUX} is not BTF handshake can read"))
    }

    pub fn parse(data: &[u8]) -> anyhow::Result<Self> {
        let u16_at = |at: usize| -> anyhow::Result<u16> {
            Ok(u16::from_le_bytes(
                data.get(at..at + 2).context("truncated")?.try_into()?,
            ))
        };
        let u32_at = |at: usize| -> anyhow::Result<u32> {
            Ok(u32::from_le_bytes(
                data.get(at..at + 4).context("truncated")?.try_into()?,
            ))
        };
        if u16_at(0)? != MAGIC {
            bail!("bad magic (a big-endian kernel, or not BTF)");
        }
        let header_len = u32_at(4)? as usize;
        let (type_off, type_len) = (u32_at(8)? as usize, u32_at(12)? as usize);
        let (str_off, str_len) = (u32_at(16)? as usize, u32_at(20)? as usize);
        let strings = data
            .get(header_len + str_off..header_len + str_off + str_len)
            .context("string section out of bounds")?
            .to_vec();
        let mut types = Vec::new();
        let mut at = header_len + type_off;
        let end = at + type_len;
        while at < end {
            let name = u32_at(at)?;
            let info = u32_at(at + 4)?;
            let size_or_type = u32_at(at + 8)?;
            at += 12;
            let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
            let mut ty = Type {
                kind,
                name,
                size_or_type,
                kind_flag: info >> 31 == 1,
                members: Vec::new(),
                array: None,
                enumerators: Vec::new(),
            };
            match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => at += 4,
                KIND_ARRAY => {
                    ty.array = Some((u32_at(at)?, u32_at(at + 8)?));
                    at += 12;
                }
                KIND_STRUCT | KIND_UNION => {
                    for _ in 0..vlen {
                        ty.members
                            .push((u32_at(at)?, u32_at(at + 4)?, u32_at(at + 8)?));
                        at += 12;
                    }
                }
                KIND_ENUM => {
                    for _ in 0..vlen {
                        ty.enumerators
                            .push((u32_at(at)?, i64::from(u32_at(at + 4)? as i32)));
                        at += 8;
                    }
                }
                KIND_ENUM64 => {
                    for _ in 0..vlen {
                        let value = u64::from(u32_at(at + 4)?) | u64::from(u32_at(at + 8)?) << 32;
                        ty.enumerators.push((u32_at(at)?, value as i64));
                        at += 12;
                    }
                }
                KIND_FUNC_PROTO => at += 8 * vlen,
                KIND_DATASEC => at += 12 * vlen,
                _ => {}
            }
            types.push(ty);
        }
        let mut btf = Self {
            types,
            strings,
            structs: HashMap::new(),
        };
        for id in 1..=btf.types.len() as u32 {
            let ty = btf.get(id)?;
            if ty.kind == KIND_STRUCT && ty.name != 0 {
                let name = btf.name(ty.name).to_owned();
                btf.structs.entry(name).or_insert(id);
            }
        }
        Ok(btf)
    }

    fn get(&self, id: u32) -> anyhow::Result<&Type> {
        self.types
            .get((id as usize).wrapping_sub(1))
            .with_context(|| format!("type ID {id} out of range"))
    }

    fn name(&self, offset: u32) -> &str {
        let rest = self.strings.get(offset as usize..).unwrap_or_default();
        let len = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..len]).unwrap_or_default()
    }

    /// Follows typedefs and qualifiers to the type they name.
    fn resolve(&self, mut id: u32) -> anyhow::Result<u32> {
        for _ in 0..32 {
            match self.get(id)?.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = self.get(id)?.size_or_type
                }
                _ => return Ok(id),
            }
        }
        bail!("type ID {id}: a chain of more than 32 typedefs")
    }

    fn size(&self, id: u32) -> anyhow::Result<u32> {
        let id = self.resolve(id)?;
        let ty = self.get(id)?;
        Ok(match ty.kind {
            KIND_INT | KIND_STRUCT | KIND_UNION | KIND_ENUM | KIND_ENUM64 => ty.size_or_type,
            KIND_PTR => 8,
            KIND_ARRAY => {
                let (element, len) = ty.array.unwrap_or_default();
                self.size(element)? * len
            }
            _ => 0,
        })
    }

    /// `path` inside struct `name`: members separated by dots (`rx_opt.user_mss`),
    /// looking through anonymous structs and unions as C does.
    pub fn member(&self, name: &str, path: &str) -> anyhow::Result<Member> {
        let mut id = *self
            .structs
            .get(name)
            .with_context(|| format!("the kernel has no struct {name}"))?;
        let mut bit_offset = 0;
        let mut found = None;
        for part in path.split('.') {
            let (member_bits, member_type, bitfield) = self
                .find(id, part)?
                .with_context(|| format!("the kernel's struct {name} has no member {path}"))?;
            bit_offset += member_bits;
            id = self.resolve(member_type)?;
            found = Some(bitfield);
        }
        let ty = self.get(id)?;
        let kind = match ty.kind {
            KIND_INT | KIND_ENUM | KIND_ENUM64 => Kind::Int,
            KIND_PTR => Kind::Pointer,
            KIND_ARRAY => {
                let (element, len) = ty.array.unwrap_or_default();
                Kind::Array {
                    element_size: self.size(element)?,
                    len,
                }
            }
            KIND_STRUCT | KIND_UNION => Kind::Struct,
            _ => Kind::Other,
        };
        let size = self.size(id)?;
        let bits = found.flatten().map(|width| (bit_offset % 8, width));
        Ok(Member {
            offset: bit_offset / 8,
            size,
            bits,
            kind,
        })
    }

    /// The member `part` of struct or union `id`, searched in anonymous members too:
    /// (its bit offset, its type, its bitfield width if it is one).
    fn find(&self, id: u32, part: &str) -> anyhow::Result<Option<(u32, u32, Option<u32>)>> {
        let ty = self.get(id)?;
        if ty.kind != KIND_STRUCT && ty.kind != KIND_UNION {
            return Ok(None);
        }
        for &(name, member_type, offset) in &ty.members {
            // With kind_flag the offset word holds the bitfield width in its top byte (pahole
            // sets it on every struct with bitfields).
            let (bits, width) = if ty.kind_flag {
                (offset & 0xff_ffff, offset >> 24)
            } else {
                (offset, 0)
            };
            let width = (width != 0).then_some(width);
            if name == 0 {
                let inner = self.resolve(member_type)?;
                if let Some((inner_bits, found_type, found_width)) = self.find(inner, part)? {
                    return Ok(Some((bits + inner_bits, found_type, found_width)));
                }
            } else if self.name(name) == part {
                return Ok(Some((bits, member_type, width)));
            }
        }
        Ok(None)
    }

    /// The value of enumerator `name` in any enum of the kernel.
    pub fn enumerator(&self, name: &str) -> Option<i64> {
        self.types.iter().find_map(|ty| {
            ty.enumerators
                .iter()
                .find(|&&(n, _)| self.name(n) == name)
                .map(|&(_, value)| value)
        })
    }
}
