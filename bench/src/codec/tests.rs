//! Tests of the codec benchmark.

use std::fs;

use corecast_codec::{EncodedFrame, MixerConfig};
use serde_json::json;

use super::drive::run_one;
use super::report::write_report;
use super::sources::{missing_in, read_cache, write_cache};
use super::{InputSize, Layout, RemoveDir, RunConfig};

#[test]
fn input_sizes_parse() {
    let i: InputSize = "720p".parse().unwrap();
    assert_eq!((i.width, i.height, i.bitrate_kbps()), (1280, 720, 1500));
    let i: InputSize = "360p".parse().unwrap();
    assert_eq!((i.width, i.height, i.bitrate_kbps()), (640, 360, 500));
    let i: InputSize = "160x90".parse().unwrap();
    assert_eq!((i.width, i.height, i.bitrate_kbps()), (160, 90, 100));
    for bad in ["1080", "161x90", "32x32", "x", "0x0"] {
        assert!(bad.parse::<InputSize>().is_err(), "{bad}");
    }
}

#[test]
fn report_has_the_table_and_plots() {
    let row = |layout: &str, met: Option<bool>| {
        let mut v = json!({"layout": layout, "input": "720p", "fps": 30, "preset": 12, "composites": 150,
            "frames_expected": 150, "output_frames_skipped": 0, "cores_per_composite": 0.39,
            "driver_thread_cores": 0.2, "cpu_ms_per_frame": 12.9, "added_latency_ms_p50": 45.0,
            "added_latency_ms_p99": 56.5, "rss_mb": 92.0, "bitrate_kbps": 370.0,
            "latency_percentiles_ms": [[0.0, 30.0], [0.9, 50.0], [0.99, 56.5]]});
        if let Some(m) = met {
            v["target"] = json!({"met": m});
        }
        v
    };
    let rows = vec![row("2x2", Some(false)), row("3x3", None)];
    let dir = std::env::temp_dir().join(format!("corecast-codec-report-{}", std::process::id()));
    let files = write_report(&dir, &rows, &json!({ "runs": rows })).unwrap();
    assert_eq!(files.len(), 5);
    let md = fs::read_to_string(dir.join("codec.md")).unwrap();
    assert!(
        md.contains(
            "| 2x2 | 720p | 30 | 12 | 150/150 | 0 | 0.39 | 0.20 | 12.9 | 45.0 / 56.5 | 92.0 | 370 | **not met** |"
        ),
        "{md}"
    );
    assert!(md.contains("| 3x3 | 720p |") && md.ends_with("(latency.svg)\n"));
    let latency = fs::read_to_string(dir.join("latency.svg")).unwrap();
    assert_eq!(latency.matches("<polyline").count(), 2);
    assert!(fs::read_to_string(dir.join("memory.svg")).unwrap().contains("(target &lt;= 64)"));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cache_round_trip() {
    let units: Vec<EncodedFrame> =
        (0..3).map(|i| EncodedFrame { data: vec![i as u8 + 1; 10 + i], pts: i as i64, keyframe: i == 0 }).collect();
    let path = std::env::temp_dir().join(format!("corecast-bench-codec-test-{}.av1s", std::process::id()));
    write_cache(&path, &units).unwrap();
    assert_eq!(read_cache(&path, 3), Some(units));
    assert_eq!(read_cache(&path, 4), None);
    let _ = fs::remove_file(&path);
}

#[test]
fn tiny_codec_run_end_to_end() {
    // The streams are encoded in this process into a private directory, then read back.
    let dir = std::env::temp_dir().join(format!("corecast-bench-codec-test-dir-{}", std::process::id()));
    let _remove = RemoveDir(dir.clone());
    let cfg = RunConfig {
        layout: Layout::Grid2x2,
        input: "160x90".parse().unwrap(),
        fps: 10,
        seconds: 0.5,
        preset: MixerConfig::default().preset,
        streams_dir: dir.clone(),
        encode_in_child: false,
    };
    let m = run_one(&cfg).unwrap();
    assert!(missing_in(&dir, &cfg, 4).is_empty());
    assert!(m.composites > 0, "{m:?}");
    assert_eq!(m.frames_expected, 5);
    assert_eq!(m.decoded, 20, "{m:?}");
    assert!(!m.run.latency.is_empty());
    let v = m.to_json();
    for key in [
        "cores_per_composite",
        "cpu_ms_per_frame",
        "added_latency_ms_p50",
        "added_latency_ms_p99",
        "rss_mb",
        "process_rss_mb",
        "composites",
        "frames_expected",
        "output_frames_skipped",
        "decoded",
        "bitrate_kbps",
        "layout",
        "input",
        "fps",
        "seconds",
        "preset",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    assert_eq!(v["layout"], "2x2");
    assert!(v["cores_per_composite"].as_f64().unwrap() > 0.0);
    assert!(v["added_latency_ms_p50"].as_f64().unwrap() > 0.0);
}
