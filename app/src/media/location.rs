//! Where a photo was taken, found and removed in place. Locations live in the EXIF GPS
//! block (JPEG APP1, PNG eXIf, WebP EXIF) and in XMP packets (exif:GPSLatitude...).
//! Removing overwrites them in the file, byte for byte the same length: the GPS block's
//! entries and the values they point to become zeros (the rest of EXIF, orientation
//! included, is untouched), an XMP packet that names a position becomes blanks. Nothing
//! moves, so nothing else in the file can break, and the position is not left behind in
//! unused bytes either.

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
        // GIF has no EXIF; XMP in GIF application blocks is not looked at.
        Kind::Gif => false,
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

/// JPEG: the APP1 segments before the image data.
fn jpeg(file: &mut File, remove: bool) -> io::Result<bool> {
    let len = file.metadata()?.len();
    let mut at = 2u64;
    let mut found = false;
    while at + 4 <= len {
        let head = read_at(file, at, 4)?;
        if head[0] != 0xFF {
            break;
        }
        let marker = head[1];
        if marker == 0xFF {
            at += 1; // fill byte
            continue;
        }
        if marker == 0xD8 || marker == 0x01 || (0xD0..=0xD7).contains(&marker) {
            at += 2;
            continue;
        }
        if marker == 0xDA || marker == 0xD9 {
            break; // the image data (or its end): no metadata after this
        }
        let seg_len = u16::from_be_bytes([head[2], head[3]]) as u64;
        if seg_len < 2 || at + 2 + seg_len > len {
            break;
        }
        if marker == 0xE1 {
            let payload_at = at + 4;
            let mut payload = read_at(file, payload_at, (seg_len - 2) as usize)?;
            let hit = if let Some(tiff) = payload.strip_prefix(EXIF_JPEG) {
                let mut tiff = tiff.to_vec();
                let hit = gps_in_tiff(&mut tiff, remove);
                if hit && remove {
                    payload[EXIF_JPEG.len()..].copy_from_slice(&tiff);
                }
                hit
            } else if payload.starts_with(XMP_JPEG) || payload.starts_with(XMP_JPEG_EXTENDED) {
                let header = if payload.starts_with(XMP_JPEG) {
                    XMP_JPEG.len()
                } else {
                    XMP_JPEG_EXTENDED.len()
                };
                let hit = xmp_has_location(&payload[header..]);
                if hit && remove {
                    blank_xmp(&mut payload[header..]);
                }
                hit
            } else {
                false
            };
            if hit && remove {
                write_at(file, payload_at, &payload)?;
            }
            found |= hit;
        }
        at += 2 + seg_len;
    }
    Ok(found)
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
            } else if data.starts_with(b"XML:com.adobe.xmp\0") {
                // iTXt: keyword, then flags; compressed text can't be read here, so it
                // counts as a location: better a lost XMP packet than a leaked position.
                let compressed = &kind == b"zTXt" || (&kind == b"iTXt" && data.get(18) == Some(&1));
                let hit = compressed || xmp_has_location(&data);
                if hit && remove {
                    // Zeros, under a chunk type no decoder knows (ancillary, private):
                    // it is skipped, and holds nothing.
                    data.fill(0);
                    new_kind = *b"blNk";
                }
                hit
            } else {
                false
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
}
