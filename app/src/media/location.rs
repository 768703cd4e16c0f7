//! Where a photo was taken, found and removed in place. Places are named by:
//! - the EXIF GPS block (JPEG APP1, PNG eXIf, WebP EXIF);
//! - XMP packets (exif:GPSLatitude...; in JPEG also extended XMP, read across its pieces;
//!   in PNG also compressed; in GIF an application extension);
//! - IPTC place names (city, country...) in a JPEG's Photoshop block;
//! - PNG "Raw profile" text chunks (EXIF, XMP or IPTC, hex-encoded by ImageMagick);
//! - whatever follows a JPEG's image: the further images of an MPF file (scanned like the
//!   first) and other data, such as a motion photo's video.
//!
//! Removing overwrites them in the file, byte for byte the same length: the GPS block's
//! entries and the values they point to become zeros (the rest of EXIF, orientation
//! included, is untouched), an XMP packet that names a position becomes blanks, a PNG text
//! chunk becomes an unknown chunk of zeros, data after a JPEG that names a place becomes
//! zeros. Nothing moves, so nothing else in the file can break, and the position is not
//! left behind in unused bytes either.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::Kind;

/// Whether the image at `path` records a location; with `remove`, it no longer does
/// afterwards (the file is rewritten in place).
pub fn scan_file(path: &Path, kind: Kind, remove: bool) -> io::Result<bool> {
    let mut file = File::options().read(true).write(remove).open(path)?;
    let found = match kind {
        Kind::Jpeg => jpeg(&mut file, remove)?,
        Kind::Png => png(&mut file, remove)?,
        Kind::WebP => webp(&mut file, remove)?,
        Kind::Gif => gif(&mut file, remove)?,
    };
    if found && remove {
        file.sync_data()?;
    }
    Ok(found)
}

const XMP_JPEG: &[u8] = b"http://ns.adobe.com/xap/1.0/\0";
const XMP_JPEG_EXTENDED: &[u8] = b"http://ns.adobe.com/xmp/extension/\0";
const EXIF_JPEG: &[u8] = b"Exif\0\0";

fn read_at(file: &mut File, at: u64, len: usize) -> io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(at))?;
    let mut buf = vec![0; len];
    file.read_exact(&mut buf)?;
    Ok(buf)
}

fn write_at(file: &mut File, at: u64, bytes: &[u8]) -> io::Result<()> {
    file.seek(SeekFrom::Start(at))?;
    file.write_all(bytes)
}

/// JPEG: the metadata of the image, and what follows its end: the further images of an
/// MPF file (each a JPEG with its own EXIF, as phones write for depth or previews) and
/// anything else (a motion photo's video).
fn jpeg(file: &mut File, remove: bool) -> io::Result<bool> {
    let len = file.metadata()?.len();
    let (mut found, end) = jpeg_image(file, 0, len, remove)?;
    // No end of the image found: nothing after it to look at.
    let Some(end) = end else { return Ok(found) };
    // After the image: JPEGs, each scanned like the first, and the data between them.
    let (mut other, mut search) = (end, end);
    while search < len {
        let Some(at) = find(file, search, len, &[0xFF, 0xD8, 0xFF])? else {
            break;
        };
        match jpeg_image(file, at, len, false)? {
            (_, Some(after)) => {
                found |= other_data(file, other, at, remove)?;
                found |= jpeg_image(file, at, len, remove)?.0;
                (other, search) = (after, after);
            }
            // Not an image after all: part of the other data.
            (_, None) => search = at + 3,
        }
    }
    found |= other_data(file, other, len, remove)?;
    Ok(found)
}

/// The JPEG image at `start`: whether its metadata (EXIF, XMP, IPTC) records a location
/// (removed with `remove`), and where it ends (after its EOI; `None` if it doesn't).
fn jpeg_image(
    file: &mut File,
    start: u64,
    len: u64,
    remove: bool,
) -> io::Result<(bool, Option<u64>)> {
    if start + 4 > len || read_at(file, start, 2)? != [0xFF, 0xD8] {
        return Ok((false, None));
    }
    let mut at = start + 2;
    let mut found = false;
    // Extended XMP comes in pieces that one text may cross: looked at together.
    let mut extended: Vec<(u64, Vec<u8>)> = Vec::new();
    let end = loop {
        if at + 2 > len {
            break None;
        }
        let head = read_at(file, at, 2)?;
        if head[0] != 0xFF {
            break None;
        }
        let marker = head[1];
        match marker {
            0xFF => {
                at += 1; // fill byte
                continue;
            }
            0xD8 | 0x01 | 0xD0..=0xD7 => {
                at += 2;
                continue;
            }
            0xD9 => break Some(at + 2),
            _ => {}
        }
        if at + 4 > len {
            break None;
        }
        let head = read_at(file, at + 2, 2)?;
        let seg_len = u16::from_be_bytes([head[0], head[1]]) as u64;
        if seg_len < 2 || at + 2 + seg_len > len {
            break None;
        }
        let payload_at = at + 4;
        if marker == 0xE1 || marker == 0xED {
            let mut payload = read_at(file, payload_at, (seg_len - 2) as usize)?;
            let hit = if let Some(tiff) = payload.strip_prefix(EXIF_JPEG) {
                let mut tiff = tiff.to_vec();
                let hit = gps_in_tiff(&mut tiff, remove);
                if hit && remove {
                    payload[EXIF_JPEG.len()..].copy_from_slice(&tiff);
                }
                hit
            } else if let Some(xmp) = payload.strip_prefix(XMP_JPEG) {
                let hit = xmp_has_location(xmp);
                if hit && remove {
                    blank_xmp(&mut payload[XMP_JPEG.len()..]);
                }
                hit
            } else if payload.starts_with(XMP_JPEG_EXTENDED) {
                // After the header: a 32-byte GUID, the full length and this offset.
                let skip = (XMP_JPEG_EXTENDED.len() + 40).min(payload.len());
                extended.push((payload_at + skip as u64, payload[skip..].to_vec()));
                false
            } else if marker == 0xED {
                iptc_location(&mut payload, remove)
            } else {
                false
            };
            if hit && remove {
                write_at(file, payload_at, &payload)?;
            }
            found |= hit;
        }
        at += 2 + seg_len;
        if marker == 0xDA {
            // The image data runs to the next marker that is not a restart.
            match next_marker(file, at, len)? {
                Some(next) => at = next,
                None => break None,
            }
        }
    };
    let joined: Vec<u8> = extended
        .iter()
        .flat_map(|(_, d)| d.iter().copied())
        .collect();
    if xmp_has_location(&joined) {
        found = true;
        if remove {
            for (at, data) in &mut extended {
                blank_xmp(data);
                write_at(file, *at, data)?;
            }
        }
    }
    Ok((found, end))
}

/// Where the next marker after entropy-coded data starts (not a stuffed 0xFF00, not a
/// restart marker, not fill).
fn next_marker(file: &mut File, from: u64, len: u64) -> io::Result<Option<u64>> {
    let mut at = from;
    while at + 1 < len {
        let n = (len - at).min(CHUNK as u64) as usize;
        let buf = read_at(file, at, n)?;
        for i in memchr::memchr_iter(0xFF, &buf) {
            match buf.get(i + 1) {
                Some(0x00 | 0xFF | 0xD0..=0xD7) => {}
                Some(_) => return Ok(Some(at + i as u64)),
                None => {}
            }
        }
        if n < 2 {
            break;
        }
        at += n as u64 - 1; // a 0xFF at the end is looked at again with what follows
    }
    Ok(None)
}

/// How much of a file is read at a time when searching it.
const CHUNK: usize = 64 << 10;

/// The first `needle` in `from..to` of the file.
fn find(file: &mut File, from: u64, to: u64, needle: &[u8]) -> io::Result<Option<u64>> {
    let mut at = from;
    while at < to {
        let n = (to - at).min(CHUNK as u64) as usize;
        let buf = read_at(file, at, n)?;
        if let Some(i) = memchr::memmem::find(&buf, needle) {
            return Ok(Some(at + i as u64));
        }
        if at + (n as u64) >= to || n < needle.len() {
            break;
        }
        at += (n - needle.len() + 1) as u64;
    }
    Ok(None)
}

/// What can name a place in data after a JPEG image that is not an image: a video's
/// ISO 6709 position (QuickTime `©xyz`, 3GPP `loci`, Apple's location key) or XMP.
const OTHER_DATA_LOCATION: &[&[u8]] = &[
    b"\xA9xyz",
    b"loci",
    b"ISO6709",
    b"GPSLatitude",
    b"GPSLongitude",
];

/// Data after a JPEG image that is not an image (`from..to`): whether it names a place;
/// with `remove`, then it is all zeroed (a motion photo keeps its still image, not its
/// video, unless its owner keeps locations).
fn other_data(file: &mut File, from: u64, to: u64, remove: bool) -> io::Result<bool> {
    if from >= to {
        return Ok(false);
    }
    let mut hit = false;
    for needle in OTHER_DATA_LOCATION {
        if find(file, from, to, needle)?.is_some() {
            hit = true;
            break;
        }
    }
    if hit && remove {
        let zeros = vec![0u8; CHUNK];
        let mut at = from;
        while at < to {
            let n = (to - at).min(CHUNK as u64) as usize;
            write_at(file, at, &zeros[..n])?;
            at += n as u64;
        }
    }
    Ok(hit)
}

/// IPTC (in a JPEG's Photoshop APP13): whether it names a place (city, sub-location,
/// state, country, location code or name); with `remove`, those values are zeroed.
fn iptc_location(payload: &mut [u8], remove: bool) -> bool {
    const PHOTOSHOP: &[u8] = b"Photoshop 3.0\0";
    if !payload.starts_with(PHOTOSHOP) {
        return false;
    }
    let mut found = false;
    let mut at = PHOTOSHOP.len();
    // Image resources: "8BIM", id, a padded Pascal name, a size, the data (padded).
    while at + 12 <= payload.len() && &payload[at..at + 4] == b"8BIM" {
        let id = u16::from_be_bytes([payload[at + 4], payload[at + 5]]);
        let name_len = payload[at + 6] as usize;
        let name_end = at + 6 + ((name_len + 2) & !1);
        let Some(size) = payload
            .get(name_end..name_end + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        else {
            break;
        };
        let data = name_end + 4;
        let Some(end) = data.checked_add(size).filter(|e| *e <= payload.len()) else {
            break;
        };
        if id == 0x0404 {
            found |= iim_location(&mut payload[data..end], remove);
        }
        at = end + (size & 1);
    }
    found
}

/// IPTC-IIM datasets: 0x1C, record, dataset, a 16-bit length, the value.
fn iim_location(iim: &mut [u8], remove: bool) -> bool {
    // Record 2: 26 location code, 27 location name, 90 city, 92 sub-location,
    // 95 province/state, 100 country code, 101 country name.
    const PLACES: &[u8] = &[26, 27, 90, 92, 95, 100, 101];
    let mut found = false;
    let mut at = 0;
    while at + 5 <= iim.len() && iim[at] == 0x1C {
        let (record, dataset) = (iim[at + 1], iim[at + 2]);
        let n = u16::from_be_bytes([iim[at + 3], iim[at + 4]]) as usize;
        if n & 0x8000 != 0 {
            break; // an extended length: not used for text
        }
        let value = at + 5..(at + 5 + n).min(iim.len());
        if record == 2 && PLACES.contains(&dataset) && !value.is_empty() {
            found = true;
            if remove {
                iim[value.clone()].fill(0);
            }
        }
        at = value.end;
    }
    found
}

/// PNG: eXIf chunks (EXIF) and text chunks holding XMP.
fn png(file: &mut File, remove: bool) -> io::Result<bool> {
    let len = file.metadata()?.len();
    let mut at = 8u64;
    let mut found = false;
    while at + 12 <= len {
        let head = read_at(file, at, 8)?;
        let chunk_len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as u64;
        let kind: [u8; 4] = [head[4], head[5], head[6], head[7]];
        if at + 12 + chunk_len > len || &kind == b"IEND" {
            break;
        }
        let metadata = matches!(&kind, b"eXIf" | b"iTXt" | b"tEXt" | b"zTXt");
        if metadata && chunk_len <= 64 << 20 {
            let mut data = read_at(file, at + 8, chunk_len as usize)?;
            let mut new_kind = kind;
            let hit = if &kind == b"eXIf" {
                gps_in_tiff(&mut data, remove)
            } else {
                let hit = png_text_location(&kind, &data);
                if hit && remove {
                    // Zeros, under a chunk type no decoder knows (ancillary, private):
                    // it is skipped, and holds nothing.
                    data.fill(0);
                    new_kind = *b"blNk";
                }
                hit
            };
            if hit && remove {
                let mut crc = crc32fast::Hasher::new();
                crc.update(&new_kind);
                crc.update(&data);
                write_at(file, at + 4, &new_kind)?;
                write_at(file, at + 8, &data)?;
                write_at(file, at + 8 + chunk_len, &crc.finalize().to_be_bytes())?;
            }
            found |= hit;
        }
        at += 12 + chunk_len;
    }
    Ok(found)
}

/// Whether a PNG text chunk (`tEXt`, `zTXt`, `iTXt`) names a place: XMP, or a "Raw
/// profile" (EXIF, XMP or IPTC, hex-encoded, as ImageMagick writes them). A chunk that
/// can't be read counts as one: better a lost packet than a leaked position.
fn png_text_location(kind: &[u8; 4], data: &[u8]) -> bool {
    let Some(nul) = memchr::memchr(0, data) else {
        return false;
    };
    let keyword = &data[..nul];
    let xmp = keyword == b"XML:com.adobe.xmp";
    let profile = keyword.strip_prefix(b"Raw profile type ");
    if !xmp && profile.is_none() {
        return false;
    }
    let rest = &data[nul + 1..];
    let text = match kind {
        b"tEXt" => Some(rest.to_vec()),
        b"zTXt" => rest.get(1..).and_then(inflate),
        // Compression flag and method, language tag, translated keyword, then the text.
        _ => (|| {
            let (flag, rest) = (*rest.first()?, rest.get(2..)?);
            let lang = memchr::memchr(0, rest)?;
            let rest = &rest[lang + 1..];
            let translated = memchr::memchr(0, rest)?;
            let text = &rest[translated + 1..];
            if flag == 1 {
                inflate(text)
            } else {
                Some(text.to_vec())
            }
        })(),
    };
    let Some(text) = text else { return true };
    match profile {
        None => xmp_has_location(&text),
        Some(name) => {
            let Some(mut bytes) = unhex_profile(&text) else {
                return true;
            };
            match name {
                b"exif" | b"APP1" => {
                    let start = if bytes.starts_with(EXIF_JPEG) {
                        EXIF_JPEG.len()
                    } else {
                        0
                    };
                    gps_in_tiff(&mut bytes[start..], false)
                }
                b"xmp" => xmp_has_location(&bytes),
                b"iptc" => iim_location(&mut bytes, false),
                b"8bim" => {
                    let mut irb = b"Photoshop 3.0\0".to_vec();
                    irb.extend_from_slice(&bytes);
                    iptc_location(&mut irb, false)
                }
                _ => false,
            }
        }
    }
}

/// A zlib stream, inflated (at most 64 MiB of it); `None` if it isn't one.
fn inflate(compressed: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(compressed)
        .take(64 << 20)
        .read_to_end(&mut out)
        .ok()?;
    Some(out)
}

/// A raw profile's bytes: "\n<name>\n<length>\n" then hex digits over many lines.
fn unhex_profile(text: &[u8]) -> Option<Vec<u8>> {
    let mut lines = text.splitn(4, |b| *b == b'\n');
    let (_, _, _, hex) = (lines.next()?, lines.next()?, lines.next()?, lines.next()?);
    let digits: Vec<u8> = hex
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    digits
        .chunks_exact(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(s, 16).ok()
        })
        .collect()
}

/// GIF: no EXIF, but XMP in an application extension ("XMP DataXMP"), written as raw
/// text that decoders walk as sub-blocks. Removing zeroes each sub-block's content and
/// keeps its length, so the file still walks the same.
fn gif(file: &mut File, remove: bool) -> io::Result<bool> {
    let len = file.metadata()?.len();
    if len < 13 {
        return Ok(false);
    }
    let table = |packed: u8| -> u64 {
        if packed & 0x80 != 0 {
            3 << ((packed & 7) + 1)
        } else {
            0
        }
    };
    let mut at = 13 + table(read_at(file, 10, 1)?[0]);
    let mut found = false;
    while at < len {
        match read_at(file, at, 1)?[0] {
            0x2C => {
                if at + 11 > len {
                    break;
                }
                let packed = read_at(file, at + 9, 1)?[0];
                // The descriptor, a local colour table, the LZW code size, the data.
                at = sub_blocks(file, at + 10 + table(packed) + 1, len, |_, _| Ok(()))?;
            }
            0x21 => {
                let head = if at + 14 <= len {
                    read_at(file, at + 1, 13)?
                } else {
                    vec![0; 2]
                };
                let xmp = head[0] == 0xFF && head[1] == 11 && &head[2..13] == b"XMP DataXMP";
                if !xmp {
                    at = sub_blocks(file, at + 2, len, |_, _| Ok(()))?;
                    continue;
                }
                let start = at + 14;
                let end = sub_blocks(file, start, len, |_, _| Ok(()))?;
                let hit = find(file, start, end, b"GPSLatitude")?.is_some()
                    || find(file, start, end, b"GPSLongitude")?.is_some();
                if hit && remove {
                    sub_blocks(file, start, len, |file, (at, n)| {
                        write_at(file, at, &vec![0; n])
                    })?;
                }
                found |= hit;
                at = end;
            }
            _ => break, // the trailer (0x3B), or not a block
        }
    }
    Ok(found)
}

/// Walks GIF sub-blocks from `at` (a size byte, then that many bytes, until a zero size),
/// handing each block's content (where, how long) to `each`; returns where they end.
fn sub_blocks(
    file: &mut File,
    mut at: u64,
    len: u64,
    mut each: impl FnMut(&mut File, (u64, usize)) -> io::Result<()>,
) -> io::Result<u64> {
    while at < len {
        let n = read_at(file, at, 1)?[0] as usize;
        if n == 0 {
            return Ok(at + 1);
        }
        if at + 1 + n as u64 > len {
            break;
        }
        each(file, (at + 1, n))?;
        at += 1 + n as u64;
    }
    Ok(len)
}

/// WebP: the RIFF container's EXIF and XMP chunks.
fn webp(file: &mut File, remove: bool) -> io::Result<bool> {
    let len = file.metadata()?.len();
    let mut at = 12u64;
    let mut found = false;
    while at + 8 <= len {
        let head = read_at(file, at, 8)?;
        let size = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as u64;
        if at + 8 + size > len {
            break;
        }
        let kind = &head[..4];
        if (kind == b"EXIF" || kind == b"XMP ") && size <= 64 << 20 {
            let mut data = read_at(file, at + 8, size as usize)?;
            let hit = if kind == b"EXIF" {
                let start = if data.starts_with(EXIF_JPEG) {
                    EXIF_JPEG.len()
                } else {
                    0
                };
                gps_in_tiff(&mut data[start..], remove)
            } else {
                let hit = xmp_has_location(&data);
                if hit && remove {
                    blank_xmp(&mut data);
                }
                hit
            };
            if hit && remove {
                write_at(file, at + 8, &data)?;
            }
            found |= hit;
        }
        at += 8 + size + (size & 1);
    }
    Ok(found)
}

fn xmp_has_location(xmp: &[u8]) -> bool {
    memchr::memmem::find(xmp, b"GPSLatitude").is_some()
        || memchr::memmem::find(xmp, b"GPSLongitude").is_some()
}

/// An XMP packet, blanked: spaces are what XMP pads packets with.
fn blank_xmp(xmp: &mut [u8]) {
    xmp.fill(b' ');
}

/// Whether a TIFF structure (EXIF) has GPS entries; with `remove`, they and the values
/// they point to are zeroed and the GPS directory is left empty.
fn gps_in_tiff(tiff: &mut [u8], remove: bool) -> bool {
    let big = match tiff.get(..4) {
        Some(b"MM\0*") => true,
        Some(b"II*\0") => false,
        _ => return false,
    };
    let u16_at = |t: &[u8], at: usize| -> Option<u16> {
        let b: [u8; 2] = t.get(at..at + 2)?.try_into().ok()?;
        Some(if big {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    };
    let u32_at = |t: &[u8], at: usize| -> Option<u32> {
        let b: [u8; 4] = t.get(at..at + 4)?.try_into().ok()?;
        Some(if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    };
    let Some(ifd0) = u32_at(tiff, 4).map(|o| o as usize) else {
        return false;
    };
    let Some(count) = u16_at(tiff, ifd0) else {
        return false;
    };
    let mut gps = None;
    for i in 0..count as usize {
        let entry = ifd0 + 2 + 12 * i;
        if u16_at(tiff, entry) == Some(0x8825) {
            gps = u32_at(tiff, entry + 8).map(|o| o as usize);
        }
    }
    let Some(gps) = gps else { return false };
    let Some(entries) = u16_at(tiff, gps) else {
        return false;
    };
    if entries == 0 {
        return false;
    }
    if !remove {
        return true;
    }
    for i in 0..entries as usize {
        let entry = gps + 2 + 12 * i;
        let (Some(kind), Some(n), Some(offset)) = (
            u16_at(tiff, entry + 2),
            u32_at(tiff, entry + 4),
            u32_at(tiff, entry + 8),
        ) else {
            break;
        };
        let unit = match kind {
            1 | 2 | 6 | 7 => 1,
            3 | 8 => 2,
            4 | 9 | 11 => 4,
            5 | 10 | 12 => 8,
            _ => 0,
        };
        let size = unit * n as usize;
        if size > 4 {
            let (start, end) = (offset as usize, (offset as usize).saturating_add(size));
            if let Some(value) = tiff.get_mut(start..end) {
                value.fill(0);
            }
        }
        if let Some(e) = tiff.get_mut(entry..entry + 12) {
            e.fill(0);
        }
    }
    if let Some(c) = tiff.get_mut(gps..gps + 2) {
        c.fill(0);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy_of(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(name);
        std::fs::copy(
            format!("{}/../testdata/photos/{name}", env!("CARGO_MANIFEST_DIR")),
            &path,
        )
        .expect("copy the test photo");
        (dir, path)
    }

    #[test]
    fn a_jpeg_loses_its_position_and_keeps_everything_else() {
        let (_dir, path) = copy_of("exif-gps.jpg");
        let before = std::fs::read(&path).expect("read");
        assert!(scan_file(&path, Kind::Jpeg, false).expect("scan"));
        assert_eq!(
            std::fs::read(&path).expect("read"),
            before,
            "a scan writes nothing"
        );

        assert!(scan_file(&path, Kind::Jpeg, true).expect("strip"));
        let after = std::fs::read(&path).expect("read");
        assert_eq!(after.len(), before.len());
        assert!(!scan_file(&path, Kind::Jpeg, false).expect("scan again"));
        // No trace of the position: not in EXIF (kamadak-exif reads no GPS field), not
        // in XMP, not as leftover bytes (48°51'29.59" was stored as 48/1 51/1 2959/100).
        let exif = exif::Reader::new()
            .read_from_container(&mut std::io::Cursor::new(&after))
            .expect("EXIF still reads");
        assert!(exif.fields().all(|f| f.ifd_num != exif::In::PRIMARY
            || !matches!(f.tag, exif::Tag::GPSLatitude | exif::Tag::GPSLongitude)));
        assert!(exif
            .get_field(exif::Tag::Model, exif::In::PRIMARY)
            .is_some());
        assert!(exif
            .get_field(exif::Tag::Orientation, exif::In::PRIMARY)
            .is_some());
        assert!(memchr::memmem::find(&after, b"GPSLatitude").is_none());
        assert!(memchr::memmem::find(&after, &2959u32.to_be_bytes()).is_none());
        // The pixels are the same image.
        let a = image::load_from_memory(&before).expect("decodes").to_rgb8();
        let b = image::load_from_memory(&after).expect("decodes").to_rgb8();
        assert_eq!(a, b);
        // The details are still there.
        let d = super::super::details::read(&mut std::io::Cursor::new(&after));
        assert_eq!(d.camera.as_deref(), Some("Google Pixel 8"));
    }

    #[test]
    fn images_without_a_position_are_left_alone() {
        for (name, kind) in [
            ("rocket.jpg", Kind::Jpeg),
            ("chelsea-exif-rot6.jpg", Kind::Jpeg),
            ("astronaut-alpha.png", Kind::Png),
            ("camera.png", Kind::Png),
            ("rocket.webp", Kind::WebP),
            ("chelsea-animated.gif", Kind::Gif),
        ] {
            let (_dir, path) = copy_of(name);
            let before = std::fs::read(&path).expect("read");
            assert!(!scan_file(&path, kind, true).expect("scan"), "{name}");
            assert_eq!(std::fs::read(&path).expect("read"), before, "{name}");
        }
    }

    #[test]
    fn png_and_webp_positions_go_too() {
        let tiff = {
            let jpeg = std::fs::read(format!(
                "{}/../testdata/photos/exif-gps.jpg",
                env!("CARGO_MANIFEST_DIR")
            ))
            .expect("read");
            let at = memchr::memmem::find(&jpeg, b"Exif\0\0").expect("EXIF") + 6;
            let len = u16::from_be_bytes([jpeg[at - 8], jpeg[at - 7]]) as usize - 8;
            jpeg[at..at + len].to_vec()
        };
        // A PNG with an eXIf chunk (after IHDR).
        let (dir, png_path) = copy_of("camera.png");
        let png = std::fs::read(&png_path).expect("read");
        let mut chunk = (tiff.len() as u32).to_be_bytes().to_vec();
        chunk.extend_from_slice(b"eXIf");
        chunk.extend_from_slice(&tiff);
        let mut crc = crc32fast::Hasher::new();
        crc.update(b"eXIf");
        crc.update(&tiff);
        chunk.extend_from_slice(&crc.finalize().to_be_bytes());
        let with = [&png[..33], &chunk[..], &png[33..]].concat();
        std::fs::write(&png_path, &with).expect("write");
        assert!(scan_file(&png_path, Kind::Png, true).expect("strip"));
        assert!(!scan_file(&png_path, Kind::Png, false).expect("scan"));
        let after = std::fs::read(&png_path).expect("read");
        image::load_from_memory(&after).expect("the PNG still decodes (CRC right)");

        // A WebP with an EXIF chunk.
        let webp_path = dir.path().join("x.webp");
        let webp = std::fs::read(format!(
            "{}/../testdata/photos/rocket.webp",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("read");
        let mut out = webp.clone();
        out.extend_from_slice(b"EXIF");
        out.extend_from_slice(&(tiff.len() as u32).to_le_bytes());
        out.extend_from_slice(&tiff);
        if tiff.len() % 2 == 1 {
            out.push(0);
        }
        let riff = (out.len() - 8) as u32;
        out[4..8].copy_from_slice(&riff.to_le_bytes());
        std::fs::write(&webp_path, &out).expect("write");
        assert!(scan_file(&webp_path, Kind::WebP, true).expect("strip"));
        assert!(!scan_file(&webp_path, Kind::WebP, false).expect("scan"));
    }

    fn testdata(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/../testdata/photos/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("read")
    }

    fn write_temp(bytes: &[u8], name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        (dir, path)
    }

    /// `jpeg` with `segment` (marker, payload) inserted after its SOI.
    fn with_segment(jpeg: &[u8], marker: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = jpeg[..2].to_vec();
        out.extend_from_slice(&[0xFF, marker]);
        out.extend_from_slice(
            &u16::try_from(payload.len() + 2)
                .expect("fits")
                .to_be_bytes(),
        );
        out.extend_from_slice(payload);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    #[test]
    fn the_end_of_a_jpeg_is_found_past_its_image_data() {
        for name in ["rocket.jpg", "large-12mp-exif-rot6.jpg", "exif-gps.jpg"] {
            let (_dir, path) = copy_of(name);
            let mut file = File::open(&path).expect("open");
            let len = file.metadata().expect("len").len();
            let (_, end) = jpeg_image(&mut file, 0, len, false).expect("scan");
            assert_eq!(end, Some(len), "{name}");
        }
    }

    #[test]
    fn a_second_image_after_the_first_loses_its_position_too() {
        // As an MPF file: the main image, then another JPEG with its own EXIF.
        let first = testdata("rocket.jpg");
        let second = testdata("exif-gps.jpg");
        let both = [&first[..], &second[..]].concat();
        let (_dir, path) = write_temp(&both, "mpf.jpg");
        assert!(scan_file(&path, Kind::Jpeg, false).expect("scan"));
        assert!(scan_file(&path, Kind::Jpeg, true).expect("strip"));
        assert!(!scan_file(&path, Kind::Jpeg, false).expect("scan again"));
        let after = std::fs::read(&path).expect("read");
        assert_eq!(
            &after[..first.len()],
            &first[..],
            "the main image is untouched"
        );
        assert!(memchr::memmem::find(&after, &2959u32.to_be_bytes()).is_none());
        // The second image still decodes, the same.
        let a = image::load_from_memory(&second).expect("decodes").to_rgb8();
        let b = image::load_from_memory(&after[first.len()..])
            .expect("decodes")
            .to_rgb8();
        assert_eq!(a, b);
    }

    #[test]
    fn a_video_after_the_image_that_names_a_place_is_removed() {
        let jpeg = testdata("rocket.jpg");
        // A motion photo's video: boxes of an MP4, one with an ISO 6709 position.
        let mut video = Vec::new();
        for (kind, body) in [
            (&b"ftyp"[..], &b"mp42\0\0\0\0isommp42"[..]),
            (b"\xA9xyz", b"\0\x12\x15\xC7+48.8582+002.2945/"),
            (b"mdat", &[7u8; 300][..]),
        ] {
            video.extend_from_slice(&(8 + body.len() as u32).to_be_bytes());
            video.extend_from_slice(kind);
            video.extend_from_slice(body);
        }
        let (_dir, path) = write_temp(&[&jpeg[..], &video[..]].concat(), "motion.jpg");
        assert!(scan_file(&path, Kind::Jpeg, true).expect("strip"));
        let after = std::fs::read(&path).expect("read");
        assert_eq!(&after[..jpeg.len()], &jpeg[..]);
        assert!(after[jpeg.len()..].iter().all(|b| *b == 0));
        assert!(!scan_file(&path, Kind::Jpeg, false).expect("scan again"));

        // One that names no place stays.
        let plain: Vec<u8> = [&jpeg[..], b"\0\0\0\x10ftypmp42\0\0\0\0"].concat();
        let (_dir, path) = write_temp(&plain, "plain.jpg");
        assert!(!scan_file(&path, Kind::Jpeg, true).expect("scan"));
        assert_eq!(std::fs::read(&path).expect("read"), plain);
    }

    #[test]
    fn extended_xmp_is_read_across_its_pieces() {
        let jpeg = testdata("rocket.jpg");
        let piece = |text: &[u8]| {
            let mut p = XMP_JPEG_EXTENDED.to_vec();
            p.extend_from_slice(&[b'0'; 32]); // GUID
            p.extend_from_slice(&[0; 8]); // full length, offset
            p.extend_from_slice(text);
            p
        };
        // "GPSLatitude" split between two segments (each inserted after the SOI: the
        // one inserted last comes first).
        let first_last = with_segment(&jpeg, 0xE1, &piece(b"itude>48,51.49N<"));
        let two = with_segment(&first_last, 0xE1, &piece(b"<exif:GPSLat"));
        let (_dir, path) = write_temp(&two, "xmp.jpg");
        assert!(scan_file(&path, Kind::Jpeg, true).expect("strip"));
        let after = std::fs::read(&path).expect("read");
        assert!(memchr::memmem::find(&after, b"48,51.49N").is_none());
        assert!(memchr::memmem::find(&after, b"GPSLat").is_none());
        assert_eq!(after.len(), two.len());
        image::load_from_memory(&after).expect("still decodes");
    }

    #[test]
    fn iptc_place_names_are_removed() {
        let jpeg = testdata("rocket.jpg");
        let irb = |iim: &[u8]| {
            let mut p = b"Photoshop 3.0\08BIM\x04\x04\0\0".to_vec();
            p.extend_from_slice(&(iim.len() as u32).to_be_bytes());
            p.extend_from_slice(iim);
            if iim.len() % 2 == 1 {
                p.push(0);
            }
            p
        };
        let dataset = |n: u8, v: &[u8]| {
            let mut d = vec![0x1C, 2, n];
            d.extend_from_slice(&(v.len() as u16).to_be_bytes());
            d.extend_from_slice(v);
            d
        };
        let iim = [
            dataset(5, b"Holiday"),
            dataset(90, b"Paris"),
            dataset(101, b"France"),
        ]
        .concat();
        let with = with_segment(&jpeg, 0xED, &irb(&iim));
        let (_dir, path) = write_temp(&with, "iptc.jpg");
        assert!(scan_file(&path, Kind::Jpeg, true).expect("strip"));
        let after = std::fs::read(&path).expect("read");
        assert!(memchr::memmem::find(&after, b"Paris").is_none());
        assert!(memchr::memmem::find(&after, b"France").is_none());
        assert!(
            memchr::memmem::find(&after, b"Holiday").is_some(),
            "the title stays"
        );

        let without = with_segment(&jpeg, 0xED, &irb(&dataset(5, b"Holiday")));
        let (_dir, path) = write_temp(&without, "title.jpg");
        assert!(!scan_file(&path, Kind::Jpeg, true).expect("scan"));
    }

    /// `png` with a chunk inserted after IHDR, its CRC right.
    fn with_chunk(png: &[u8], kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
        chunk.extend_from_slice(kind);
        chunk.extend_from_slice(data);
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(data);
        chunk.extend_from_slice(&crc.finalize().to_be_bytes());
        [&png[..33], &chunk[..], &png[33..]].concat()
    }

    fn deflate(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(bytes).expect("compress");
        z.finish().expect("compress")
    }

    #[test]
    fn compressed_png_text_is_read_for_a_position() {
        let png = testdata("camera.png");
        let jpeg = testdata("exif-gps.jpg");
        let at = memchr::memmem::find(&jpeg, b"Exif\0\0").expect("EXIF");
        let len = u16::from_be_bytes([jpeg[at - 2], jpeg[at - 1]]) as usize - 2;
        let exif = &jpeg[at..at + len];
        // ImageMagick's raw profile: hex, in a zTXt chunk.
        let hex: String = exif.iter().map(|b| format!("{b:02x}")).collect();
        let lines: Vec<&str> = hex
            .as_bytes()
            .chunks(72)
            .map(|c| std::str::from_utf8(c).expect("hex"))
            .collect();
        let text = format!("\nexif\n{:8}\n{}\n", exif.len(), lines.join("\n"));
        let data = [&b"Raw profile type exif\0\0"[..], &deflate(text.as_bytes())].concat();
        let (_dir, path) = write_temp(&with_chunk(&png, b"zTXt", &data), "raw.png");
        assert!(scan_file(&path, Kind::Png, true).expect("strip"));
        assert!(!scan_file(&path, Kind::Png, false).expect("scan again"));
        image::load_from_memory(&std::fs::read(&path).expect("read")).expect("decodes");

        // Compressed XMP (iTXt) is read: a position goes, a packet without one stays.
        let itxt = |xmp: &[u8]| [&b"XML:com.adobe.xmp\0\x01\0\0\0"[..], &deflate(xmp)].concat();
        let (_dir, path) = write_temp(
            &with_chunk(
                &png,
                b"iTXt",
                &itxt(b"<x:xmpmeta><exif:GPSLatitude>48,51N</exif:GPSLatitude>"),
            ),
            "xmp.png",
        );
        assert!(scan_file(&path, Kind::Png, true).expect("strip"));
        let plain = with_chunk(&png, b"iTXt", &itxt(b"<x:xmpmeta><dc:title>Cat</dc:title>"));
        let (_dir, path) = write_temp(&plain, "title.png");
        assert!(!scan_file(&path, Kind::Png, true).expect("scan"));
        assert_eq!(std::fs::read(&path).expect("read"), plain);
    }

    #[test]
    fn gif_xmp_loses_its_position_and_the_gif_still_decodes() {
        let gif = testdata("chelsea-animated.gif");
        // An application extension after the header, colour table and first block: the
        // XMP's raw text then the "magic trailer" (0x01, 0xFF..0x00) that ends the walk.
        let lsd = gif[10];
        let table = if lsd & 0x80 != 0 {
            3usize << ((lsd & 7) + 1)
        } else {
            0
        };
        let at = 13 + table;
        let mut ext = b"\x21\xFF\x0BXMP DataXMP".to_vec();
        ext.extend_from_slice(
            b"<x:xmpmeta><exif:GPSLatitude>48,51N</exif:GPSLatitude></x:xmpmeta>",
        );
        ext.push(1);
        ext.extend((0..=255u8).rev());
        ext.push(0);
        let with = [&gif[..at], &ext[..], &gif[at..]].concat();
        let (_dir, path) = write_temp(&with, "xmp.gif");
        assert!(scan_file(&path, Kind::Gif, true).expect("strip"));
        let after = std::fs::read(&path).expect("read");
        assert!(memchr::memmem::find(&after, b"48,51N").is_none());
        assert!(!scan_file(&path, Kind::Gif, false).expect("scan again"));
        let a = image::load_from_memory(&gif).expect("decodes").to_rgba8();
        let b = image::load_from_memory(&after).expect("decodes").to_rgba8();
        assert_eq!(a, b);
    }
}
