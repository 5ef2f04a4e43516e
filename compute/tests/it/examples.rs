//! Every example job, through a real worker process, matches a CPU reference and the
//! expected output shipped with it.

use compute::manifest::BindingRef;

use crate::support::*;

fn expected_file(name: &str, at: BindingRef) -> Vec<u8> {
    let path = example_dir(name).join(format!("expected-{}-{}.bin", at.group, at.binding));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn check(sup: &mut compute::supervisor::Supervisor, name: &str, reference: Vec<u8>) {
    let job = example(name);
    let result = run_to_end(sup, &job);
    assert_eq!(result.outputs.len(), 1, "{name}");
    let out = &result.outputs[0];
    assert_eq!(
        out.data, reference,
        "{name}: GPU output differs from the CPU reference"
    );
    assert_eq!(
        out.data,
        expected_file(name, out.binding),
        "{name}: differs from the shipped expected output"
    );
    assert_eq!(out.blake3, blake3::hash(&reference).to_hex().to_string());
    assert!(result.gpu_time_ms > 0.0);
    assert!(!result.class.adapter.is_empty());
}

fn le_u32(values: impl IntoIterator<Item = u32>) -> Vec<u8> {
    values.into_iter().flat_map(u32::to_le_bytes).collect()
}

fn le_f32(values: impl IntoIterator<Item = f32>) -> Vec<u8> {
    values.into_iter().flat_map(f32::to_le_bytes).collect()
}

#[test]
fn every_example_matches_its_cpu_reference() {
    let mut sup = supervisor();

    check(
        &mut sup,
        "vector_add",
        le_f32((0..4096).map(|i| i as f32 * 0.5 + 0.25)),
    );

    let input: Vec<u32> = (0..65536u32).map(|i| (i * 7) % 1000).collect();
    check(&mut sup, "reduction", le_u32([input.iter().sum::<u32>()]));

    let n = 64usize;
    let a: Vec<f32> = (0..n * n).map(|x| ((x / n + x % n) % 7) as f32).collect();
    let b: Vec<f32> = (0..n * n)
        .map(|x| (((x / n) * (x % n)) % 5) as f32)
        .collect();
    let c = (0..n * n).map(|x| {
        let (row, col) = (x / n, x % n);
        (0..n).map(|k| a[row * n + k] * b[k * n + col]).sum::<f32>()
    });
    check(&mut sup, "matmul", le_f32(c));

    let data: Vec<u32> = (0..4096u32).map(|i| i % 13).collect();
    let scanned = data.iter().scan(0u32, |acc, v| {
        *acc += v;
        Some(*acc)
    });
    check(&mut sup, "prefix_sum", le_u32(scanned));

    check(&mut sup, "int_hash", le_u32((0..8192u32).map(int_hash)));
}

#[test]
fn compiled_pipelines_are_kept_on_disk_and_a_damaged_cache_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = runner_config();
    config.pipeline_cache_dir = Some(dir.path().to_owned());
    let job = example("matmul");
    {
        let mut sup = compute::supervisor::Supervisor::new(config.clone());
        run_to_end(&mut sup, &job);
    }
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    // lavapipe (Vulkan) supports pipeline caches; other backends keep none.
    let class = {
        let mut sup = compute::supervisor::Supervisor::new(config.clone());
        sup.exec_class().unwrap()
    };
    if class.backend != "vulkan" {
        return;
    }
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(std::fs::metadata(&files[0]).unwrap().len() > 48);

    // A fresh worker starts from the cache; a damaged file is ignored, not trusted.
    let mut sup = compute::supervisor::Supervisor::new(config.clone());
    let expected = expected_file("matmul", job.outputs[0]);
    assert!(run_to_end(&mut sup, &job).outputs[0].data == expected);
    drop(sup);
    let mut damaged = std::fs::read(&files[0]).unwrap();
    let last = damaged.len() - 1;
    damaged[last] ^= 0xff;
    std::fs::write(&files[0], &damaged).unwrap();
    let mut sup = compute::supervisor::Supervisor::new(config);
    assert!(run_to_end(&mut sup, &job).outputs[0].data == expected);
}

#[test]
fn capability_kernels_measure_something() {
    let cap = compute::capability::measure(None, compute::capability::Sizes::SMOKE).unwrap();
    assert!(
        cap.bandwidth_gb_s > 0.0 && cap.bandwidth_gb_s.is_finite(),
        "{cap:?}"
    );
    assert!(
        cap.fp32_gflop_s > 0.0 && cap.fp32_gflop_s.is_finite(),
        "{cap:?}"
    );
    assert!(!cap.class.adapter.is_empty());
}
