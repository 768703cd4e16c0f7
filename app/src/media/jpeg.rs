//! JPEG specifics: completeness (the decoders forgive truncation, filling the missing part
//! with grey, so we walk the marker structure ourselves and require the end-of-image
//! marker) and the thumbnail decoded at reduced size.

use std::io::{BufRead, Read};

use image::metadata::Orientation;
use image::{DynamicImage, GrayImage, RgbImage};

use super::MediaError;

/// Width and height from the frame header, read without decoding (or `None`, and the
/// general decoder decides).
pub fn dimensions<R: Read>(input: R) -> Option<(u32, u32)> {
    let mut decoder = jpeg_decoder::Decoder::new(input);
    decoder.read_info().ok()?;
    let info = decoder.info()?;
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    (width > 0 && height > 0).then_some((width, height))
}

/// Decode at the smallest DCT scale (1/8, 1/4, 1/2 or 1) that still covers the thumbnail:
/// the 12 MP photo decodes at 500x375 instead of 4000x3000, a sixty-fourth of the pixels
/// and of the memory (`jpeg-decoder`'s `scale`, what libjpeg's shrink-on-load does for
/// vips). The entropy-coded data is still read to its end, so corruption is still found.
/// `None` when this decoder can't read the file (an unusual pixel format, say): the
/// caller decodes it at full size instead.
pub fn scaled_thumbnail<R: Read>(
    input: R,
    (width, height): (u32, u32),
    edge: u32,
) -> Option<(DynamicImage, Orientation)> {
    let mut decoder = jpeg_decoder::Decoder::new(input);
    decoder.read_info().ok()?;
    // CMYK and 16-bit greyscale are rare: the general decoder handles them (checked before
    // decoding, so they are not decoded twice).
    let format = decoder.info()?.pixel_format;
    if !matches!(
        format,
        jpeg_decoder::PixelFormat::RGB24 | jpeg_decoder::PixelFormat::L8
    ) {
        return None;
    }
    // The scale is the smallest that covers either requested side: ask for the long side
    // only, or a very wide image would come out a pixel short of the thumbnail's edge.
    let (tw, th) = super::thumbnail_size(width, height, edge);
    let (tw, th) = if width >= height {
        (u16::try_from(tw).ok()?, u16::MAX)
    } else {
        (u16::MAX, u16::try_from(th).ok()?)
    };
    let (w, h) = decoder.scale(tw, th).ok()?;
    let pixels = decoder.decode().ok()?;
    let (w, h) = (u32::from(w), u32::from(h));
    let img = match format {
        jpeg_decoder::PixelFormat::L8 => {
            DynamicImage::ImageLuma8(GrayImage::from_raw(w, h, pixels)?)
        }
        _ => DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, pixels)?),
    };
    let orientation = decoder
        .exif_data()
        .and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms);
    Some((img, orientation))
}

/// Ok if the segments are well formed and the entropy-coded data ends in EOI. Reads the
/// file once, front to back, a buffer at a time.
pub fn check_complete<R: BufRead>(input: &mut R) -> Result<(), MediaError> {
    let incomplete = |what: &str| MediaError::Corrupt(format!("file ends {what}"));
    let mut head = [0u8; 2];
    if read_full(input, &mut head)? < 2 || head != [0xFF, 0xD8] {
        return Err(MediaError::Corrupt("missing start-of-image marker".into()));
    }
    // Whether the 0xFF that starts the next marker has been read already (the scan of
    // entropy-coded data stops just past it).
    let mut at_marker = false;
    loop {
        if !at_marker && next_byte(input)? != Some(0xFF) {
            return Err(incomplete("before the end-of-image marker"));
        }
        // Fill bytes 0xFF may repeat before the marker itself.
        let marker = loop {
            match next_byte(input)? {
                Some(0xFF) => continue,
                Some(marker) => break marker,
                None => return Err(incomplete("before the end-of-image marker")),
            }
        };
        at_marker = false;
        match marker {
            0xD9 => return Ok(()),
            // Standalone markers without a length.
            0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        let mut len = [0u8; 2];
        if read_full(input, &mut len)? < 2 {
            return Err(incomplete("inside a segment header"));
        }
        let len = u64::from(u16::from_be_bytes(len));
        if len < 2 || skip(input, len - 2)? < len - 2 {
            return Err(incomplete("inside a segment"));
        }
        if marker == 0xDA {
            // Start of scan: skip entropy-coded data up to the next real marker (0xFF
            // followed by anything but a stuffed zero or a restart marker).
            loop {
                let buf = input.fill_buf()?;
                if buf.is_empty() {
                    return Err(incomplete("inside the image data"));
                }
                match memchr::memchr(0xFF, buf) {
                    None => {
                        let n = buf.len();
                        input.consume(n);
                        continue;
                    }
                    Some(at) => input.consume(at + 1),
                }
                match input.fill_buf()?.first() {
                    None => return Err(incomplete("inside the image data")),
                    Some(0x00 | 0xD0..=0xD7) => input.consume(1),
                    Some(_) => {
                        at_marker = true;
                        break;
                    }
                }
            }
        }
    }
}

fn next_byte<R: BufRead>(input: &mut R) -> std::io::Result<Option<u8>> {
    let byte = input.fill_buf()?.first().copied();
    if byte.is_some() {
        input.consume(1);
    }
    Ok(byte)
}

/// Fill `buf` as far as the input goes; how many bytes were read.
fn read_full<R: Read>(input: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match input.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Skip up to `n` bytes; how many were there.
fn skip<R: BufRead>(input: &mut R, n: u64) -> std::io::Result<u64> {
    std::io::copy(&mut input.by_ref().take(n), &mut std::io::sink())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_jpeg_is_decoded_at_the_smallest_scale_that_covers_the_thumbnail() {
        let img = image::RgbImage::from_pixel(1600, 1200, image::Rgb([200, 100, 50]));
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut bytes)
            .encode_image(&img)
            .expect("encode");
        let (decoded, orientation) =
            scaled_thumbnail(&bytes[..], (1600, 1200), super::super::THUMB_EDGE)
                .expect("read by the scaling decoder");
        // 400x300 is wanted: a quarter of each side covers it exactly.
        assert_eq!((decoded.width(), decoded.height()), (400, 300));
        assert_eq!(orientation, Orientation::NoTransforms);
    }

    #[test]
    fn a_very_wide_jpeg_is_scaled_by_its_long_side() {
        let img = image::RgbImage::from_pixel(3190, 24, image::Rgb([10, 20, 30]));
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut bytes)
            .encode_image(&img)
            .expect("encode");
        let (decoded, _) =
            scaled_thumbnail(&bytes[..], (3190, 24), super::super::THUMB_EDGE).expect("read");
        // An eighth (399 x 3) would cover the short side's 3 pixels but not the 400-pixel
        // edge: a quarter it is.
        assert_eq!((decoded.width(), decoded.height()), (798, 6));
    }

    fn jpeg() -> Vec<u8> {
        let img = image::DynamicImage::new_rgb8(64, 48);
        let mut out = Vec::new();
        img.write_to(
            &mut std::io::Cursor::new(&mut out),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
        out
    }

    #[test]
    fn whole_jpeg_passes_and_truncated_fails() {
        let whole = jpeg();
        assert_eq!(check_complete(&mut &whole[..]), Ok(()));
        for cut in [
            0,
            1,
            3,
            20,
            whole.len() / 2,
            whole.len() - 2,
            whole.len() - 1,
        ] {
            assert!(
                matches!(
                    check_complete(&mut &whole[..cut]),
                    Err(MediaError::Corrupt(_))
                ),
                "cut at {cut}"
            );
        }
        // Read a few bytes at a time, as from a file: markers split across reads.
        let tiny = std::io::BufReader::with_capacity(3, &whole[..]);
        assert_eq!(check_complete(&mut { tiny }), Ok(()));
        let tiny = std::io::BufReader::with_capacity(3, &whole[..whole.len() - 1]);
        assert!(check_complete(&mut { tiny }).is_err());
    }
}
