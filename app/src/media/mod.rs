//! Image intake: decide the type from the bytes, check the size from the header before
//! decoding, decode within limits, turn upright (EXIF orientation) and make a thumbnail
//! that carries no metadata.

pub mod details;
mod jpeg;
pub mod location;

use std::io::{BufRead, Cursor, Read, Seek};

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

/// Long edge of a thumbnail, in pixels.
pub const THUMB_EDGE: u32 = 400;
/// The long edge of the rendition a share link's viewer shows (no EXIF, no location).
pub const SCREEN_EDGE: u32 = 1600;
const THUMB_JPEG_QUALITY: u8 = 80;

/// An accepted image type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Jpeg,
    Png,
    Gif,
    WebP,
}

impl Kind {
    pub fn mime(self) -> &'static str {
        match self {
            Kind::Jpeg => "image/jpeg",
            Kind::Png => "image/png",
            Kind::Gif => "image/gif",
            Kind::WebP => "image/webp",
        }
    }

    pub fn ext(self) -> &'static str {
        match self {
            Kind::Jpeg => "jpg",
            Kind::Png => "png",
            Kind::Gif => "gif",
            Kind::WebP => "webp",
        }
    }

    fn format(self) -> ImageFormat {
        match self {
            Kind::Jpeg => ImageFormat::Jpeg,
            Kind::Png => ImageFormat::Png,
            Kind::Gif => ImageFormat::Gif,
            Kind::WebP => ImageFormat::WebP,
        }
    }

    /// Decide the type from the content alone; the name and Content-Type are not trusted.
    pub fn sniff(bytes: &[u8]) -> Option<Kind> {
        match image::guess_format(bytes).ok()? {
            ImageFormat::Jpeg => Some(Kind::Jpeg),
            ImageFormat::Png => Some(Kind::Png),
            ImageFormat::Gif => Some(Kind::Gif),
            ImageFormat::WebP => Some(Kind::WebP),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MediaError {
    #[error("not a supported image type (JPEG, PNG, GIF or WebP)")]
    Unsupported,
    #[error("the image is {width}x{height} pixels; the limit is {limit} pixels")]
    TooManyPixels { width: u32, height: u32, limit: u64 },
    #[error("the image is damaged or incomplete ({0})")]
    Corrupt(String),
    /// Reading the upload back from where it was received failed: ours, not the file's.
    #[error("the upload could not be read back ({0})")]
    Io(String),
}

impl From<std::io::Error> for MediaError {
    fn from(e: std::io::Error) -> Self {
        MediaError::Io(e.to_string())
    }
}

/// A checked image and its thumbnail.
#[derive(Debug)]
pub struct Processed {
    pub kind: Kind,
    /// Dimensions as displayed, after EXIF orientation.
    pub width: u32,
    pub height: u32,
    pub thumb: Vec<u8>,
    pub thumb_kind: Kind,
}

/// The type of the image `input` holds, from its first bytes; `input` is left at its start.
fn sniff<R: BufRead + Seek>(input: &mut R) -> Result<Option<Kind>, MediaError> {
    // Every signature `image::guess_format` knows is shorter than this.
    let mut head = Vec::with_capacity(32);
    input.by_ref().take(32).read_to_end(&mut head)?;
    input.rewind()?;
    Ok(Kind::sniff(&head))
}

/// Check and thumbnail one upload, read from `input` (a buffered file as the server
/// receives it, or bytes in memory): the file is not read into memory whole, only what
/// its decoder needs (except a JPEG the scaling decoder can't read: `image`'s JPEG
/// decoder reads its input whole). CPU-bound: call it from `spawn_blocking`.
pub fn process<R: BufRead + Seek>(input: R, max_pixels: u64) -> Result<Processed, MediaError> {
    process_to(input, max_pixels, THUMB_EDGE)
}

/// [`process`], with the rendition's long edge `edge` instead of the thumbnail's.
pub fn process_to<R: BufRead + Seek>(
    mut input: R,
    max_pixels: u64,
    edge: u32,
) -> Result<Processed, MediaError> {
    let kind = sniff(&mut input)?.ok_or(MediaError::Unsupported)?;
    // A decoder's I/O error is a short or damaged file, unless the operating system
    // raised it (reading our own spool failed): that one is ours, not the file's.
    let corrupt = |e: image::ImageError| match e {
        image::ImageError::IoError(e) if e.raw_os_error().is_some() => {
            MediaError::Io(e.to_string())
        }
        e => MediaError::Corrupt(e.to_string()),
    };

    // The header alone says how big the decoded image would be; refuse before allocating.
    // For a JPEG, read by the scaling decoder: `image`'s reads the whole file into memory
    // first, even for its dimensions.
    let known = match kind {
        Kind::Jpeg => jpeg::dimensions(&mut input),
        _ => None,
    };
    input.rewind()?;
    let (width, height) = match known {
        Some(dimensions) => dimensions,
        None => ImageReader::with_format(&mut input, kind.format())
            .into_dimensions()
            .map_err(corrupt)?,
    };
    input.rewind()?;
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels || pixels == 0 {
        return Err(MediaError::TooManyPixels {
            width,
            height,
            limit: max_pixels,
        });
    }
    if kind == Kind::Jpeg {
        jpeg::check_complete(&mut input)?;
        input.rewind()?;
        if let Some(done) = jpeg::scaled_thumbnail(&mut input, (width, height), edge) {
            let (img, orientation) = done;
            let (width, height) = upright(width, height, orientation);
            return finish(kind, width, height, img, orientation, edge);
        }
        // A JPEG the scaling decoder can't read: the general path decides (and explains).
        input.rewind()?;
    }

    let mut reader = ImageReader::with_format(input, kind.format());
    let mut limits = Limits::default();
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    // RGBA16 is the widest buffer a decoder may need, plus slack for its own tables.
    limits.max_alloc = Some(pixels.saturating_mul(8).saturating_add(64 << 20));
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(corrupt)?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let img = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    let (width, height) = upright(img.width(), img.height(), orientation);
    finish(kind, width, height, img, orientation, edge)
}

/// Thumbnail the decoded image (`width` x `height` are the original's, upright).
/// Scale first, then turn the small result upright: rotating the full decoded image cost
/// a second full-size buffer and a fifth of the time (docs/BENCHMARKS.md, part 3).
fn finish(
    kind: Kind,
    width: u32,
    height: u32,
    img: DynamicImage,
    orientation: image::metadata::Orientation,
    edge: u32,
) -> Result<Processed, MediaError> {
    // `thumbnail` also enlarges: a small image is its own thumbnail (re-encoded, so no EXIF).
    let mut thumb = if img.width() <= edge && img.height() <= edge {
        img
    } else {
        let small = img.thumbnail(edge, edge);
        drop(img);
        small
    };
    thumb.apply_orientation(orientation);
    let (thumb, thumb_kind) =
        encode_thumbnail(&thumb).map_err(|e| MediaError::Corrupt(e.to_string()))?;
    Ok(Processed {
        kind,
        width,
        height,
        thumb,
        thumb_kind,
    })
}

/// The size a thumbnail of `width` x `height` gets: the long edge [`THUMB_EDGE`] (never
/// enlarged), the ratio kept.
fn thumbnail_size(width: u32, height: u32, edge: u32) -> (u32, u32) {
    let long = width.max(height).max(1);
    if long <= edge {
        return (width, height);
    }
    let scale = |v: u32| ((u64::from(v) * u64::from(edge)) / u64::from(long)).max(1) as u32;
    (scale(width), scale(height))
}

/// Dimensions as displayed: the orientations that turn by 90 degrees swap them.
fn upright(width: u32, height: u32, orientation: image::metadata::Orientation) -> (u32, u32) {
    use image::metadata::Orientation::*;
    match orientation {
        Rotate90 | Rotate270 | Rotate90FlipH | Rotate270FlipH => (height, width),
        NoTransforms | Rotate180 | FlipHorizontal | FlipVertical => (width, height),
    }
}

/// JPEG for opaque images (small), PNG where there is transparency to keep.
/// Encoding from pixels writes no EXIF, so no GPS position leaks through a thumbnail.
fn encode_thumbnail(thumb: &DynamicImage) -> Result<(Vec<u8>, Kind), image::ImageError> {
    let mut out = Vec::with_capacity(64 * 1024);
    if thumb.color().has_alpha() {
        thumb.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)?;
        Ok((out, Kind::Png))
    } else {
        let rgb = thumb.to_rgb8();
        JpegEncoder::new_with_quality(&mut out, THUMB_JPEG_QUALITY).encode_image(&rgb)?;
        Ok((out, Kind::Jpeg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let img = DynamicImage::new_rgb8(width, height);
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([
                (x * 255 / width) as u8,
                (y * 255 / height) as u8,
                ((x + y) % 256) as u8,
            ])
        });
        let mut out = Vec::new();
        JpegEncoder::new_with_quality(&mut out, 90)
            .encode_image(&img)
            .unwrap();
        out
    }

    #[test]
    fn a_large_jpeg_decoded_at_reduced_scale_matches_the_full_decode() {
        let bytes = jpeg(1600, 1200);
        let p = process(Cursor::new(&bytes), 10_000_000).unwrap();
        assert_eq!((p.width, p.height), (1600, 1200));
        let scaled = image::load_from_memory(&p.thumb).unwrap().to_rgb8();
        assert_eq!(scaled.dimensions(), (400, 300));
        let full = image::load_from_memory(&bytes)
            .unwrap()
            .thumbnail(THUMB_EDGE, THUMB_EDGE)
            .to_rgb8();
        assert_eq!(full.dimensions(), (400, 300));
        let diff: u64 = scaled
            .as_raw()
            .iter()
            .zip(full.as_raw())
            .map(|(a, b)| u64::from(a.abs_diff(*b)))
            .sum();
        let mean = diff as f64 / scaled.as_raw().len() as f64;
        assert!(mean < 6.0, "mean difference per channel {mean:.2}");
    }

    #[test]
    fn a_truncated_jpeg_is_refused_before_the_scaled_decode() {
        let bytes = jpeg(1600, 1200);
        let cut = &bytes[..bytes.len() * 2 / 3];
        assert!(matches!(
            process(Cursor::new(cut), 10_000_000),
            Err(MediaError::Corrupt(_))
        ));
    }

    #[test]
    fn thumbnail_sizes_keep_the_ratio_and_never_enlarge() {
        assert_eq!(thumbnail_size(4000, 3000, THUMB_EDGE), (400, 300));
        assert_eq!(thumbnail_size(3000, 4000, THUMB_EDGE), (300, 400));
        assert_eq!(thumbnail_size(300, 200, THUMB_EDGE), (300, 200));
        assert_eq!(thumbnail_size(10_000, 1, THUMB_EDGE), (400, 1));
    }

    #[test]
    fn text_is_not_an_image() {
        assert_eq!(
            process(Cursor::new(b"hello, I am text"), 1_000_000).unwrap_err(),
            MediaError::Unsupported
        );
    }

    #[test]
    fn pixel_limit_is_checked_from_the_header() {
        let err = process(Cursor::new(png(200, 100)), 10_000).unwrap_err();
        assert!(
            matches!(
                err,
                MediaError::TooManyPixels {
                    width: 200,
                    height: 100,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn small_png_gets_a_small_thumbnail() {
        let p = process(Cursor::new(png(800, 200)), 1_000_000).unwrap();
        assert_eq!((p.kind, p.width, p.height), (Kind::Png, 800, 200));
        let thumb = image::load_from_memory(&p.thumb).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (400, 100));
    }

    #[test]
    fn an_image_smaller_than_a_thumbnail_is_not_enlarged() {
        let p = process(Cursor::new(png(64, 48)), 1_000_000).unwrap();
        let thumb = image::load_from_memory(&p.thumb).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (64, 48));
    }
}
