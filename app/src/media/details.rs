//! Photo details from EXIF, read at upload: when it was taken, with what, how exposed.
//! The location is reduced to "has one" (`location` finds and removes it).
//! kamadak-exif reads the EXIF block out of JPEG, PNG and WebP files.

use std::io::{BufRead, Seek};

use exif::{In, Tag, Value};

/// What the image page shows about a photo; every part is optional (a screenshot has
/// none of it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Details {
    /// When it was taken, as the camera's clock read (no time zone), in ms since the epoch
    /// taken as UTC: for sorting and for showing, never converted.
    pub taken_at: Option<i64>,
    /// "Google Pixel 8".
    pub camera: Option<String>,
    pub lens: Option<String>,
    /// "6.9 mm".
    pub focal_length: Option<String>,
    /// "f/1.8".
    pub aperture: Option<String>,
    /// "1/250 s".
    pub exposure: Option<String>,
    pub iso: Option<i64>,
}

/// Read the details; an image without EXIF (or with a damaged one) has none.
pub fn read<R: BufRead + Seek>(input: &mut R) -> Details {
    let Ok(exif) = exif::Reader::new().read_from_container(input) else {
        return Details::default();
    };
    let text = |tag: Tag| -> Option<String> {
        let field = exif.get_field(tag, In::PRIMARY)?;
        let Value::Ascii(parts) = &field.value else {
            return None;
        };
        let joined: String = parts
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        let clean: String = joined
            .trim_matches(|c: char| c == '\0' || c.is_whitespace())
            .chars()
            .filter(|c| !c.is_control())
            .take(100)
            .collect();
        (!clean.is_empty()).then_some(clean)
    };
    let rational = |tag: Tag| -> Option<(u32, u32)> {
        match &exif.get_field(tag, In::PRIMARY)?.value {
            Value::Rational(v) => v.first().filter(|r| r.denom != 0).map(|r| (r.num, r.denom)),
            _ => None,
        }
    };
    let camera = match (text(Tag::Make), text(Tag::Model)) {
        (Some(make), Some(model)) if model.starts_with(&make) => Some(model),
        (Some(make), Some(model)) => Some(format!("{make} {model}")),
        (make, model) => make.or(model),
    };
    Details {
        taken_at: text(Tag::DateTimeOriginal)
            .or_else(|| text(Tag::DateTime))
            .and_then(|t| parse_exif_time(&t)),
        camera,
        lens: text(Tag::LensModel),
        focal_length: rational(Tag::FocalLength).map(|(n, d)| trim(n as f64 / d as f64, "mm")),
        aperture: rational(Tag::FNumber)
            .map(|(n, d)| format!("f/{}", decimal(n as f64 / d as f64))),
        exposure: rational(Tag::ExposureTime).map(|(n, d)| exposure(n, d)),
        iso: exif
            .get_field(Tag::PhotographicSensitivity, In::PRIMARY)
            .and_then(|f| f.value.get_uint(0))
            .map(i64::from),
    }
}

/// "2024:07:14 18:32:05" → ms since the epoch, read as UTC.
fn parse_exif_time(raw: &str) -> Option<i64> {
    let format = time::macros::format_description!("[year]:[month]:[day] [hour]:[minute]:[second]");
    let t = time::PrimitiveDateTime::parse(raw.get(..19)?, &format).ok()?;
    Some((t.assume_utc().unix_timestamp_nanos() / 1_000_000) as i64)
}

/// One decimal at most: 1.8, 6.9, 35.
fn decimal(v: f64) -> String {
    let s = format!("{v:.1}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

fn trim(v: f64, unit: &str) -> String {
    format!("{} {unit}", decimal(v))
}

/// "1/250 s" for short exposures, "2.5 s" for long ones.
fn exposure(num: u32, denom: u32) -> String {
    if num == 0 {
        return "0 s".to_string();
    }
    let secs = num as f64 / denom as f64;
    if secs >= 0.5 {
        format!("{} s", decimal(secs))
    } else {
        format!("1/{} s", (1.0 / secs).round() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn photo(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/../testdata/photos/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("test photo")
    }

    #[test]
    fn a_phone_photo_has_its_camera_lens_date_and_exposure_read() {
        let d = read(&mut Cursor::new(photo("exif-gps.jpg")));
        assert_eq!(d.camera.as_deref(), Some("Google Pixel 8"));
        assert_eq!(d.lens.as_deref(), Some("Pixel 8 back camera 6.9mm f/1.68"));
        assert_eq!(d.focal_length.as_deref(), Some("6.9 mm"));
        assert_eq!(d.aperture.as_deref(), Some("f/1.8"));
        assert_eq!(d.exposure.as_deref(), Some("1/250 s"));
        assert_eq!(d.iso, Some(200));
        // 2024-07-14 18:32:05 as the camera's clock read it.
        assert_eq!(d.taken_at, Some(1_720_981_925_000));
    }

    #[test]
    fn images_without_exif_have_no_details() {
        for name in ["camera.png", "rocket.webp", "chelsea-animated.gif"] {
            assert_eq!(
                read(&mut Cursor::new(photo(name))),
                Details::default(),
                "{name}"
            );
        }
        assert_eq!(
            read(&mut Cursor::new(b"not an image".to_vec())),
            Details::default()
        );
    }

    #[test]
    fn exposures_read_as_photographers_write_them() {
        assert_eq!(exposure(1, 250), "1/250 s");
        assert_eq!(exposure(10, 2500), "1/250 s");
        assert_eq!(exposure(5, 2), "2.5 s");
        assert_eq!(exposure(1, 2), "0.5 s");
        assert_eq!(decimal(35.0), "35");
    }
}
