//! Cost of the training augmentations per example (2 s stereo at 44.1 kHz): each op alone,
//! all on, and the defaults. Median and mean over 40 draws after one warm-up (FFT plans are
//! made once per thread). `cargo bench -p isola-trainer --bench augment`.

use isola_trainer::synth;
use isola_trainer::train::augment::{PROBABILITY_KEYS, augment};
use isola_trainer::train::config::TrainConfig;
use isola_trainer::train::sampler::step_rng;

/// `TrainConfig::default()` with every augmentation probability set to `p`, except `on`
/// set to 1.
fn config(p: f64, on: Option<&str>) -> TrainConfig {
    let mut v = serde_json::to_value(TrainConfig::default()).unwrap();
    for key in PROBABILITY_KEYS {
        v[key] = serde_json::json!(if Some(key) == on { 1.0 } else { p });
    }
    serde_json::from_value(v).unwrap()
}

fn main() {
    let t = synth::track(44_100, 2.0, 1);
    let (v, a) = (t.vocals, t.accompaniment);
    let report = |name: &str, cfg: &TrainConfig| {
        let mut times: Vec<f64> = (0..41)
            .map(|step| {
                let (mut v, mut a) = (v.clone(), a.clone());
                let start = std::time::Instant::now();
                augment(&mut v, &mut a, cfg, &mut step_rng(0, step));
                std::hint::black_box((v, a));
                start.elapsed().as_secs_f64() * 1e6
            })
            .skip(1)
            .collect();
        let mean = times.iter().sum::<f64>() / times.len() as f64;
        times.sort_by(f64::total_cmp);
        println!("{name:>16}: median {:>6.0} µs, mean {mean:>6.0} µs per example", times[times.len() / 2]);
    };
    for key in PROBABILITY_KEYS {
        report(key.trim_end_matches("_prob"), &config(0.0, Some(key)));
    }
    report("all on", &config(1.0, None));
    report("defaults", &TrainConfig::default());
}
