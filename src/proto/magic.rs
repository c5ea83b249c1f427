//! What a body's first bytes say it is (file signatures), what a Content-Type says it is, and
//! where a chunked body's data starts. Pure functions over borrowed bytes; nothing allocates.
//!
//! Signatures are checked beyond their first bytes where a short one would match ordinary
//! text: "MZ" needs the PE header its e_lfanew points to (or the DOS stub's message), ELF needs
//! a valid class, data and version byte, CAFEBABE is a Mach-O universal binary only with a
//! small architecture count (a Java class file carries its version there, 45 or more, as
//! `file(1)` tells them apart), bzip2 needs its block magic after the level digit.

/// How many body bytes [`sniff`] wants when the body has them: enough for a PE header behind
/// any common DOS stub.
pub const SNIFF_LEN: usize = 1024;

/// What the first bytes of a body are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Magic {
    Pe,
    Elf,
    MachO,
    MachOUniversal,
    Zip,
    Gzip,
    SevenZip,
    Rar,
    Xz,
    Bzip2,
    Shebang,
    PowerShell,
    Batch,
    Png,
    Jpeg,
    Gif,
    Webp,
    Bmp,
    Ico,
    Tiff,
    /// An ISO base media file (`ftyp`): AVIF, HEIC, and MP4 video alike.
    IsoMedia,
    JpegXl,
    /// Text starting with `<` (SVG, XML, HTML).
    Markup,
}

/// The families the body check compares against a Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MagicClass {
    Executable,
    Archive,
    Script,
    Image,
    Markup,
}

impl Magic {
    pub fn name(self) -> &'static str {
        match self {
            Magic::Pe => "pe",
            Magic::Elf => "elf",
            Magic::MachO => "mach-o",
            Magic::MachOUniversal => "mach-o-universal",
            Magic::Zip => "zip",
            Magic::Gzip => "gzip",
            Magic::SevenZip => "7z",
            Magic::Rar => "rar",
            Magic::Xz => "xz",
            Magic::Bzip2 => "bzip2",
            Magic::Shebang => "shebang-script",
            Magic::PowerShell => "powershell",
            Magic::Batch => "batch",
            Magic::Png => "png",
            Magic::Jpeg => "jpeg",
            Magic::Gif => "gif",
            Magic::Webp => "webp",
            Magic::Bmp => "bmp",
            Magic::Ico => "ico",
            Magic::Tiff => "tiff",
            Magic::IsoMedia => "iso-media",
            Magic::JpegXl => "jpeg-xl",
            Magic::Markup => "markup",
        }
    }

    pub fn class(self) -> MagicClass {
        match self {
            Magic::Pe | Magic::Elf | Magic::MachO | Magic::MachOUniversal => MagicClass::Executable,
            Magic::Zip | Magic::Gzip | Magic::SevenZip | Magic::Rar | Magic::Xz | Magic::Bzip2 => {
                MagicClass::Archive
            }
            Magic::Shebang | Magic::PowerShell | Magic::Batch => MagicClass::Script,
            Magic::Markup => MagicClass::Markup,
            Magic::Png
            | Magic::Jpeg
            | Magic::Gif
            | Magic::Webp
            | Magic::Bmp
            | Magic::Ico
            | Magic::Tiff
            | Magic::IsoMedia
            | Magic::JpegXl => MagicClass::Image,
        }
    }
}

fn u32_le(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([
        *s.first()?,
        *s.get(1)?,
        *s.get(2)?,
        *s.get(3)?,
    ]))
}

fn u32_be(b: &[u8], at: usize) -> Option<u32> {
    u32_le(b, at).map(u32::swap_bytes)
}

/// A PE image: "MZ", and "PE\0\0" where e_lfanew points, or the DOS stub's message when the
/// header lies beyond the bytes at hand.
fn is_pe(b: &[u8]) -> bool {
    if !b.starts_with(b"MZ") {
        return false;
    }
    if let Some(off) = u32_le(b, 0x3c) {
        let off = off as usize;
        if b.get(off..off.saturating_add(4)) == Some(b"PE\0\0") {
            return true;
        }
    }
    contains(
        b.get(..0x100).unwrap_or(b),
        b"program cannot be run in DOS mode",
    )
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Skips a UTF-8 byte-order mark and leading whitespace (scripts and markup may start with
/// either).
fn text_start(b: &[u8]) -> &[u8] {
    let b = b.strip_prefix(b"\xef\xbb\xbf").unwrap_or(b);
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    b.get(n..).unwrap_or(&[])
}

fn starts_ci(b: &[u8], prefix: &[u8]) -> bool {
    b.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

/// First words of a PowerShell script that no other format starts with.
const POWERSHELL_STARTS: &[&[u8]] = &[
    b"powershell",
    b"pwsh ",
    b"iex ",
    b"iex(",
    b"invoke-expression",
    b"invoke-webrequest",
    b"$erroractionpreference",
    b"set-strictmode",
    b"[reflection.assembly]",
    b"[system.reflection.assembly]",
    b"[net.servicepointmanager]",
    b"[system.net.servicepointmanager]",
    b"add-type ",
];

/// The format whose signature the body starts with, if any.
pub fn sniff(b: &[u8]) -> Option<Magic> {
    let at = |i: usize, sig: &[u8]| b.get(i..i + sig.len()) == Some(sig);
    if is_pe(b) {
        return Some(Magic::Pe);
    }
    if at(0, b"\x7fELF")
        && matches!(b.get(4), Some(1 | 2))
        && matches!(b.get(5), Some(1 | 2))
        && b.get(6) == Some(&1)
    {
        return Some(Magic::Elf);
    }
    match u32_be(b, 0) {
        Some(0xfeed_face | 0xfeed_facf | 0xcefa_edfe | 0xcffa_edfe) => return Some(Magic::MachO),
        Some(0xcafe_babe) if u32_be(b, 4).is_some_and(|n| (1..20).contains(&n)) => {
            return Some(Magic::MachOUniversal)
        }
        Some(0xbeba_feca) if u32_le(b, 4).is_some_and(|n| (1..20).contains(&n)) => {
            return Some(Magic::MachOUniversal)
        }
        _ => {}
    }
    let found = if at(0, b"PK\x03\x04") {
        Magic::Zip
    } else if at(0, b"\x1f\x8b\x08") {
        Magic::Gzip
    } else if at(0, b"7z\xbc\xaf\x27\x1c") {
        Magic::SevenZip
    } else if at(0, b"Rar!\x1a\x07\x00") || at(0, b"Rar!\x1a\x07\x01\x00") {
        Magic::Rar
    } else if at(0, b"\xfd7zXZ\x00") {
        Magic::Xz
    } else if at(0, b"BZh")
        && b.get(3).is_some_and(|d| (b'1'..=b'9').contains(d))
        && at(4, b"1AY&SY")
    {
        Magic::Bzip2
    } else if at(0, b"\x89PNG\r\n\x1a\n") {
        Magic::Png
    } else if at(0, b"\xff\xd8\xff") {
        Magic::Jpeg
    } else if at(0, b"GIF87a") || at(0, b"GIF89a") {
        Magic::Gif
    } else if at(0, b"RIFF") && at(8, b"WEBP") {
        Magic::Webp
    } else if at(0, b"BM") && u32_le(b, 2).is_some_and(|n| n >= 26) && at(6, b"\0\0\0\0") {
        Magic::Bmp
    } else if at(0, b"\0\0\x01\0") || at(0, b"\0\0\x02\0") {
        Magic::Ico
    } else if at(0, b"II*\0") || at(0, b"MM\0*") {
        Magic::Tiff
    } else if at(4, b"ftyp") {
        Magic::IsoMedia
    } else if at(0, b"\xff\x0a") || at(0, b"\0\0\0\x0cJXL \r\n\x87\n") {
        Magic::JpegXl
    } else {
        let t = text_start(b);
        if t.starts_with(b"#!/") || t.starts_with(b"#! /") {
            Magic::Shebang
        } else if POWERSHELL_STARTS.iter().any(|p| starts_ci(t, p)) {
            Magic::PowerShell
        } else if starts_ci(t, b"@echo off") {
            Magic::Batch
        } else if t.starts_with(b"<") {
            Magic::Markup
        } else {
            return None;
        }
    };
    Some(found)
}

/// What a Content-Type promises, as far as the body check compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaClass {
    /// image/* other than SVG.
    Image,
    /// image/svg+xml: an image, but XML text.
    Svg,
    Video,
    Audio,
    Font,
    Html,
    Css,
    Json,
    Javascript,
    Xml,
    Text,
    /// Anything else (application/octet-stream, archives, downloads): not judged.
    Other,
}

impl MediaClass {
    /// Classifies a Content-Type value (`type/subtype; parameters`, any case).
    pub fn of(content_type: &[u8]) -> MediaClass {
        let essence = content_type.split(|&c| c == b';').next().unwrap_or(&[]);
        let n = essence
            .iter()
            .take_while(|c| c.is_ascii_whitespace())
            .count();
        let essence = essence.get(n..).unwrap_or(&[]);
        let end = essence.len()
            - essence
                .iter()
                .rev()
                .take_while(|c| c.is_ascii_whitespace())
                .count();
        let e = essence.get(..end).unwrap_or(&[]);
        let is = |s: &[u8]| e.eq_ignore_ascii_case(s);
        let ends = |s: &[u8]| {
            e.len() >= s.len()
                && e.get(e.len() - s.len()..)
                    .is_some_and(|t| t.eq_ignore_ascii_case(s))
        };
        if is(b"image/svg+xml") {
            MediaClass::Svg
        } else if starts_ci(e, b"image/") {
            MediaClass::Image
        } else if starts_ci(e, b"video/") {
            MediaClass::Video
        } else if starts_ci(e, b"audio/") {
            MediaClass::Audio
        } else if starts_ci(e, b"font/")
            || starts_ci(e, b"application/font-")
            || starts_ci(e, b"application/x-font-")
            || is(b"application/vnd.ms-fontobject")
        {
            MediaClass::Font
        } else if is(b"text/html") || is(b"application/xhtml+xml") {
            MediaClass::Html
        } else if is(b"text/css") {
            MediaClass::Css
        } else if is(b"application/json") || is(b"text/json") || ends(b"+json") {
            MediaClass::Json
        } else if is(b"text/javascript")
            || is(b"application/javascript")
            || is(b"application/x-javascript")
            || is(b"application/ecmascript")
        {
            MediaClass::Javascript
        } else if is(b"text/xml") || is(b"application/xml") || ends(b"+xml") {
            MediaClass::Xml
        } else if is(b"text/plain") {
            MediaClass::Text
        } else {
            MediaClass::Other
        }
    }

    /// Binary media formats: their bodies are never text, scripts or archives.
    pub fn is_binary_media(self) -> bool {
        matches!(
            self,
            MediaClass::Image | MediaClass::Video | MediaClass::Audio | MediaClass::Font
        )
    }
}

/// Where a chunked body's first chunk stands in the bytes after the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkStart {
    /// The chunk-size line has not ended yet.
    Incomplete,
    /// The data starts at `at` and the chunk holds `len` bytes (0: the body is empty).
    Data {
        at: usize,
        len: u64,
    },
    Invalid,
}

/// Reads the first chunk-size line (`1a2b;ext=1\r\n`, RFC 9112 7.1).
pub fn first_chunk(b: &[u8]) -> ChunkStart {
    let Some(eol) = b.iter().take(1024).position(|&c| c == b'\n') else {
        return if b.len() >= 1024 {
            ChunkStart::Invalid
        } else {
            ChunkStart::Incomplete
        };
    };
    let line = b.get(..eol).unwrap_or(&[]);
    let digits = line.iter().take_while(|c| c.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return ChunkStart::Invalid;
    }
    let mut len = 0u64;
    for &c in line.get(..digits).unwrap_or(&[]) {
        let d = (c as char).to_digit(16).unwrap_or(0);
        len = (len << 4) | u64::from(d);
    }
    match line.get(digits..) {
        Some([] | [b'\r'] | [b';' | b' ' | b'\t', ..]) => ChunkStart::Data { at: eol + 1, len },
        _ => ChunkStart::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pe(e_lfanew: u32, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        b[..2].copy_from_slice(b"MZ");
        b[0x3c..0x40].copy_from_slice(&e_lfanew.to_le_bytes());
        let at = e_lfanew as usize;
        if at + 4 <= len {
            b[at..at + 4].copy_from_slice(b"PE\0\0");
        }
        b
    }

    #[test]
    fn executables_need_more_than_their_first_two_bytes() {
        assert_eq!(sniff(&pe(0xe8, 512)), Some(Magic::Pe));
        // "MZ" and nothing behind e_lfanew: text such as "MZone", not a program.
        assert_eq!(sniff(&pe(0x400, 512)), None);
        assert_eq!(sniff(b"MZone is a band"), None);
        let mut stub = pe(0x400, 512);
        stub[0x4e..0x4e + 33].copy_from_slice(b"program cannot be run in DOS mode");
        assert_eq!(sniff(&stub), Some(Magic::Pe));
        assert_eq!(sniff(b"\x7fELF\x02\x01\x01\0\0\0\0\0"), Some(Magic::Elf));
        assert_eq!(sniff(b"\x7fELF\x09\x01\x01"), None);
        for m in [
            &b"\xfe\xed\xfa\xce\0\0\0\x07"[..],
            b"\xfe\xed\xfa\xcf\x01\0\0\x07",
            b"\xce\xfa\xed\xfe\x07\0\0\0",
            b"\xcf\xfa\xed\xfe\x07\0\0\x01",
        ] {
            assert_eq!(sniff(m), Some(Magic::MachO), "{m:x?}");
        }
        assert_eq!(
            sniff(b"\xca\xfe\xba\xbe\0\0\0\x02"),
            Some(Magic::MachOUniversal)
        );
        assert_eq!(
            sniff(b"\xbe\xba\xfe\xca\x02\0\0\0"),
            Some(Magic::MachOUniversal)
        );
        // A Java class file (major version 52) shares CAFEBABE.
        assert_eq!(sniff(b"\xca\xfe\xba\xbe\0\0\0\x34"), None);
    }

    #[test]
    fn archives_scripts_and_images() {
        let cases: &[(&[u8], Magic)] = &[
            (b"PK\x03\x04\x14\0", Magic::Zip),
            (b"\x1f\x8b\x08\0\0\0", Magic::Gzip),
            (b"7z\xbc\xaf\x27\x1c\0\x04", Magic::SevenZip),
            (b"Rar!\x1a\x07\x00", Magic::Rar),
            (b"Rar!\x1a\x07\x01\x00", Magic::Rar),
            (b"\xfd7zXZ\x00\x00", Magic::Xz),
            (b"BZh91AY&SY", Magic::Bzip2),
            (b"#!/bin/sh\n", Magic::Shebang),
            (b"\xef\xbb\xbf  #!/usr/bin/env python3\n", Magic::Shebang),
            (b"powershell -nop -w hidden", Magic::PowerShell),
            (b"IEX (New-Object Net.WebClient)", Magic::PowerShell),
            (b"$ErrorActionPreference = 'Stop'", Magic::PowerShell),
            (b"@ECHO OFF\r\n", Magic::Batch),
            (b"\x89PNG\r\n\x1a\n\0\0", Magic::Png),
            (b"\xff\xd8\xff\xe0", Magic::Jpeg),
            (b"GIF89a\x01\0", Magic::Gif),
            (b"RIFF\x24\0\0\0WEBPVP8 ", Magic::Webp),
            (b"\0\0\x01\0\x01\0", Magic::Ico),
            (b"\0\0\0\x1cftypavif", Magic::IsoMedia),
            (b"  <svg xmlns=", Magic::Markup),
        ];
        for (bytes, want) in cases {
            assert_eq!(sniff(bytes), Some(*want), "{bytes:x?}");
        }
        for text in [
            &b"BZh is not bzip2"[..],
            b"{\"a\":1}",
            b"body { color: red }",
            b"",
            b"Hello",
        ] {
            assert_eq!(sniff(text), None, "{text:?}");
        }
    }

    #[test]
    fn media_classes() {
        let cases: &[(&[u8], MediaClass)] = &[
            (b"image/png", MediaClass::Image),
            (b" Image/GIF ; charset=x", MediaClass::Image),
            (b"image/svg+xml", MediaClass::Svg),
            (b"video/mp4", MediaClass::Video),
            (b"audio/mpeg", MediaClass::Audio),
            (b"font/woff2", MediaClass::Font),
            (b"application/font-woff", MediaClass::Font),
            (b"text/html; charset=utf-8", MediaClass::Html),
            (b"text/css", MediaClass::Css),
            (b"application/json", MediaClass::Json),
            (b"application/problem+json", MediaClass::Json),
            (b"application/javascript", MediaClass::Javascript),
            (b"application/rss+xml", MediaClass::Xml),
            (b"text/plain", MediaClass::Text),
            (b"application/octet-stream", MediaClass::Other),
            (b"application/zip", MediaClass::Other),
            (b"", MediaClass::Other),
        ];
        for (ct, want) in cases {
            assert_eq!(MediaClass::of(ct), *want, "{ct:?}");
        }
    }

    #[test]
    fn chunk_size_lines() {
        assert_eq!(
            first_chunk(b"1a2B\r\nxyz"),
            ChunkStart::Data { at: 6, len: 0x1a2b }
        );
        assert_eq!(
            first_chunk(b"10;name=v\r\n"),
            ChunkStart::Data { at: 11, len: 16 }
        );
        assert_eq!(
            first_chunk(b"0\r\n\r\n"),
            ChunkStart::Data { at: 3, len: 0 }
        );
        assert_eq!(first_chunk(b"5\n"), ChunkStart::Data { at: 2, len: 5 });
        assert_eq!(first_chunk(b"1a"), ChunkStart::Incomplete);
        assert_eq!(first_chunk(b"zz\r\n"), ChunkStart::Invalid);
        assert_eq!(first_chunk(b"12345678901234567\r\n"), ChunkStart::Invalid);
        assert_eq!(first_chunk(b"5x\r\n"), ChunkStart::Invalid);
        assert_eq!(first_chunk(&[b'1'; 2000]), ChunkStart::Invalid);
    }
}
