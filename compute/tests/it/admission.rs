//! Admission refuses bad jobs on the CPU with located errors; no GPU involved.

use compute::admission::{self, Caps, Refused};
use compute::manifest::{self, Job};

fn job(source: &str, bindings: &str, entry: &str) -> Job {
    let manifest = format!(
        r#"{{"source": {source:?}, "entry_point": "{entry}", "workgroups": [1, 1, 1],
            "bindings": [{bindings}], "outputs": []}}"#
    );
    manifest::parse(&manifest, std::path::Path::new("."), "test.json").unwrap()
}

const OUT: &str = r#"{"binding": 0, "kind": "storage_read_write", "zero": 64}"#;

fn refused(job: &Job) -> Refused {
    admission::admit(job, &Caps::default()).unwrap_err()
}

#[test]
fn examples_are_admitted() {
    for name in [
        "vector_add",
        "reduction",
        "matmul",
        "prefix_sum",
        "int_hash",
    ] {
        let job = crate::support::example(name);
        admission::admit(&job, &Caps::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn syntax_error_is_located() {
    let src = "@group(0) @binding(0) var<storage, read_write> out: array<u32>;\n\n@compute @workgroup_size(1)\nfn main() {\n    out[0] = 1u +;\n}\n";
    let r = refused(&job(src, OUT, "main"));
    assert_eq!(r.0.len(), 1);
    assert_eq!(
        (r.0[0].line, r.0[0].column.is_some()),
        (Some(5), true),
        "{r}"
    );
    assert!(r.to_string().contains("wgsl:5:"), "{r}");
}

#[test]
fn unknown_identifier_is_located() {
    let src = "@compute @workgroup_size(1)\nfn main() {\n    let x = nope;\n}\n";
    let r = refused(&job(src, "", "main"));
    assert_eq!(r.0[0].line, Some(3), "{r}");
}

#[test]
fn huge_private_array_is_refused() {
    let src = "@group(0) @binding(0) var<storage, read_write> out: array<u32>;\nvar<private> big: array<u32, 8192>;\n@compute @workgroup_size(1)\nfn main() {\n    big[3] = 1u;\n    out[0] = big[3];\n}\n";
    let r = refused(&job(src, OUT, "main"));
    let text = r.to_string();
    assert!(
        text.contains("private memory") && text.contains("16384"),
        "{text}"
    );
    assert_eq!(r.0[0].line, Some(2), "{text}");
}

#[test]
fn huge_local_array_is_refused() {
    let src = "@group(0) @binding(0) var<storage, read_write> out: array<u32>;\n@compute @workgroup_size(1)\nfn main() {\n    var big: array<u32, 5000>;\n    big[1] = 2u;\n    out[0] = big[1];\n}\n";
    assert!(
        refused(&job(src, OUT, "main"))
            .to_string()
            .contains("private memory")
    );
}

#[test]
fn oversized_workgroup_is_refused() {
    let src = "@group(0) @binding(0) var<storage, read_write> out: array<u32>;\n@compute @workgroup_size(1024)\nfn main(@builtin(global_invocation_id) id: vec3<u32>) {\n    out[id.x] = 1u;\n}\n";
    let r = refused(&job(src, OUT, "main"));
    assert!(r.to_string().contains("1024 invocations"), "{r}");
    assert_eq!(r.0[0].line, Some(3), "{r}");
}

#[test]
fn too_much_workgroup_memory_is_refused() {
    let src = "@group(0) @binding(0) var<storage, read_write> out: array<u32>;\nvar<workgroup> tile: array<u32, 5000>;\n@compute @workgroup_size(1)\nfn main() {\n    tile[0] = 1u;\n    out[0] = tile[0];\n}\n";
    assert!(
        refused(&job(src, OUT, "main"))
            .to_string()
            .contains("workgroup memory")
    );
}

#[test]
fn oversized_buffer_is_refused() {
    let src = "@group(0) @binding(0) var<storage, read_write> out: array<u32>;\n@compute @workgroup_size(1)\nfn main() {\n    out[0] = 1u;\n}\n";
    // Too big for any buffer: refused while reading the manifest, before allocating.
    let huge = format!(
        r#"{{"source": {src:?}, "entry_point": "main", "workgroups": [1, 1, 1],
            "bindings": [{{"binding": 0, "kind": "storage_read_write", "zero": 134217732}}], "outputs": []}}"#
    );
    let err = manifest::parse(&huge, std::path::Path::new("."), "m.json").unwrap_err();
    assert!(err.to_string().contains("too large"), "{err}");
    // Too big for a uniform buffer: refused by admission.
    let src = "@group(0) @binding(0) var<uniform> u: vec4<u32>;\n@group(0) @binding(1) var<storage, read_write> out: array<u32>;\n@compute @workgroup_size(1)\nfn main() {\n    out[0] = u.x;\n}\n";
    let big = r#"{"binding": 0, "kind": "uniform", "zero": 65540}, {"binding": 1, "kind": "storage_read_write", "zero": 64}"#;
    let r = refused(&job(src, big, "main"));
    assert!(
        r.to_string()
            .contains("the limit for a uniform buffer is 65536"),
        "{r}"
    );
    let small_budget = Caps {
        total_buffer_bytes: 32,
    };
    let r = admission::admit(&job(src, OUT, "main"), &small_budget).unwrap_err();
    assert!(r.to_string().contains("accepts at most 32"), "{r}");
}

#[test]
fn missing_entry_point_is_named_with_the_ones_there() {
    let src = "@group(0) @binding(0) var<storage, read_write> out: array<u32>;\n@compute @workgroup_size(1)\nfn main() {\n    out[0] = 1u;\n}\n";
    let r = refused(&job(src, OUT, "mian"));
    assert!(
        r.to_string().contains("no entry point named \"mian\""),
        "{r}"
    );
    assert!(r.to_string().contains("[\"main\"]"), "{r}");
}

#[test]
fn binding_mismatches_are_located() {
    let src = "@group(0) @binding(0) var<storage, read_write> out: array<u32>;\n@group(0) @binding(1) var<storage, read> input: array<u32>;\n@compute @workgroup_size(1)\nfn main() {\n    out[0] = input[0];\n}\n";
    // Read-write in the shader, read-only in the manifest; input missing altogether.
    let wrong = r#"{"binding": 0, "kind": "storage_read", "zero": 64}"#;
    let r = refused(&job(src, wrong, "main"));
    let text = r.to_string();
    assert!(
        text.contains("wgsl:1:")
            && text.contains(
                "the shader declares it storage_read_write but the manifest says storage_read"
            ),
        "{text}"
    );
    assert!(
        text.contains("wgsl:2:")
            && text.contains(
                "@group(0) @binding(1) is used by \"main\" but the manifest has no such binding"
            ),
        "{text}"
    );
}

#[test]
fn buffer_smaller_than_the_shader_type_is_refused() {
    let src = "struct Big { values: array<u32, 64> }\n@group(0) @binding(0) var<storage, read_write> out: Big;\n@compute @workgroup_size(1)\nfn main() {\n    out.values[63] = 1u;\n}\n";
    let r = refused(&job(src, OUT, "main"));
    assert!(r.to_string().contains("needs at least 256"), "{r}");
}

#[test]
fn the_runners_group_is_reserved() {
    let src = "@group(3) @binding(0) var<storage, read_write> out: array<u32>;\n@compute @workgroup_size(1)\nfn main() {\n    out[0] = 1u;\n}\n";
    let r = refused(&job(
        src,
        r#"{"group": 3, "binding": 0, "kind": "storage_read_write", "zero": 64}"#,
        "main",
    ));
    assert!(r.to_string().contains("group 3 is the runner's"), "{r}");
}

#[test]
fn manifest_problems_are_clear() {
    let base = std::path::Path::new(".");
    let err = manifest::parse("{\"source\": \"x\", ", base, "m.json").unwrap_err();
    assert!(err.to_string().contains("m.json:1:"), "{err}");
    let err = manifest::parse(r#"{"source": "x", "entry_point": "main", "workgroups": [1,1,1], "bindings": [{"binding": 0, "kind": "storage_read"}], "outputs": []}"#, base, "m.json").unwrap_err();
    assert!(
        err.to_string()
            .contains("exactly one of `data`, `base64`, `zero` or `fill`"),
        "{err}"
    );
    let err = manifest::parse(r#"{"source": "x", "entry_point": "main", "workgroups": [1,1,1], "bindings": [], "outputs": [4]}"#, base, "m.json").unwrap_err();
    assert!(
        err.to_string()
            .contains("output @group(0) @binding(4) is not one of the bindings"),
        "{err}"
    );
    let err = manifest::parse(r#"{"wgsl": "nope.wgsl", "entry_point": "main", "workgroups": [1,1,1], "bindings": [], "outputs": []}"#, base, "m.json").unwrap_err();
    assert!(err.to_string().contains("nope.wgsl"), "{err}");
    let err = manifest::parse(r#"{"source": "x", "entry_point": "main", "workgroups": [1,1,1], "bindings": [], "outputs": [], "extra": 1}"#, base, "m.json").unwrap_err();
    assert!(err.to_string().contains("unknown field `extra`"), "{err}");
}

#[test]
fn override_workgroup_sizes_are_refused() {
    let src = "override size: u32 = 64;\n@group(0) @binding(0) var<storage, read_write> out: array<u32>;\n@compute @workgroup_size(size)\nfn main(@builtin(global_invocation_id) id: vec3<u32>) {\n    out[id.x] = 1u;\n}\n";
    let r = refused(&job(src, OUT, "main"));
    assert!(r.to_string().contains("override"), "{r}");
}

#[test]
fn a_job_without_steps_is_refused() {
    let mut j = crate::support::example("vector_add");
    j.steps.clear();
    assert!(refused(&j).to_string().contains("0 steps"));
}

#[test]
fn huge_sizes_in_a_manifest_are_refused_before_allocating() {
    let base = std::path::Path::new(".");
    let src = "@compute @workgroup_size(1)\nfn main() {}\n";
    for binding in [
        r#"{"binding": 0, "kind": "storage_read", "fill": {"type": "u32", "value": 1, "count": 4611686018427387904}}"#,
        r#"{"binding": 0, "kind": "storage_read", "zero": 18446744073709551615}"#,
    ] {
        let text = format!(
            r#"{{"source": {src:?}, "entry_point": "main", "workgroups": [1, 1, 1], "bindings": [{binding}], "outputs": []}}"#
        );
        let err = manifest::parse(&text, base, "m.json").unwrap_err();
        assert!(err.to_string().contains("too large"), "{err}");
    }
    // Many large buffers: refused on the running total, not after allocating them all.
    let many: Vec<String> = (0..40)
        .map(|i| format!(r#"{{"binding": {i}, "kind": "storage_read", "zero": 134217728}}"#))
        .collect();
    let text = format!(
        r#"{{"source": {src:?}, "entry_point": "main", "workgroups": [1, 1, 1], "bindings": [{}], "outputs": []}}"#,
        many.join(",")
    );
    let err = manifest::parse(&text, base, "m.json").unwrap_err();
    assert!(err.to_string().contains("too large"), "{err}");
    // A grid and repeat that multiply past u64 do not overflow.
    let mut j = crate::support::example("vector_add");
    j.steps[0].workgroups = [65535; 3];
    j.steps[0].repeat = 1_000_000;
    assert_eq!(j.total_workgroups(), u64::MAX);
}

/// Every way a shader can hold a large value per invocation is counted, and refused at
/// its place. Each shader holds 32 KiB (twice the cap) and passes naga's validation.
#[test]
fn large_private_memory_is_refused_however_it_is_declared() {
    let head = "@group(0) @binding(0) var<storage, read_write> out: array<u32>;\n";
    let cases: &[(&str, &str, Option<u32>)] = &[
        (
            "a local",
            "@compute @workgroup_size(1)\nfn main() {\n    var big: array<u32, 8192>;\n    big[out[1]] = 2u;\n    out[0] = big[out[2]];\n}\n",
            Some(3),
        ),
        (
            "a let value",
            "@compute @workgroup_size(1)\nfn main() {\n    let big = array<u32, 8192>();\n    out[0] = big[out[2]];\n}\n",
            Some(3),
        ),
        (
            "a const value in a function",
            "@compute @workgroup_size(1)\nfn main() {\n    const big = array<u32, 8192>();\n    out[0] = big[out[2]];\n}\n",
            Some(3),
        ),
        (
            "a module constant",
            "const BIG = array<u32, 8192>();\n@compute @workgroup_size(1)\nfn main() {\n    out[0] = BIG[out[2]];\n}\n",
            Some(1),
        ),
        (
            "an array of structs",
            "struct Cell { a: vec4<u32>, b: vec4<u32> }\nvar<private> cells: array<Cell, 1024>;\n@compute @workgroup_size(1)\nfn main() {\n    cells[out[1]].a.x = 1u;\n    out[0] = cells[out[2]].a.x;\n}\n",
            Some(2),
        ),
        (
            "an array in a called function",
            "fn helper(i: u32) -> u32 {\n    var big: array<u32, 8192>;\n    big[i] = i;\n    return big[i / 2u];\n}\n@compute @workgroup_size(1)\nfn main() {\n    out[0] = helper(out[1]);\n}\n",
            Some(2),
        ),
        (
            "several unnamed arrays indexed at run time",
            "@compute @workgroup_size(1)\nfn main() {\n    out[0] = array<u32, 3000>()[out[1]] + array<u32, 3000>()[out[2]];\n}\n",
            None,
        ),
        (
            "an array passed by value",
            "fn pick(values: array<u32, 8192>, i: u32) -> u32 {\n    return values[i];\n}\n@compute @workgroup_size(1)\nfn main() {\n    out[0] = pick(array<u32, 8192>(), out[1]);\n}\n",
            None,
        ),
    ];
    for (how, body, line) in cases {
        let src = format!("{head}{body}");
        let r = admission::admit(&job(&src, OUT, "main"), &Caps::default())
            .map(|_| ())
            .expect_err(how);
        let text = r.to_string();
        assert!(text.contains("private memory"), "{how}: {text}");
        let problem =
            r.0.iter()
                .find(|p| p.message.contains("private memory"))
                .unwrap();
        // Lines of the body, after the one-line head.
        if let Some(line) = line {
            assert_eq!(problem.line, Some(line + 1), "{how}: {text}");
        }
        assert!(
            problem.line.is_some() && problem.column.is_some(),
            "{how}: {text}"
        );
    }
    // The same shapes, small, are admitted: the count is of bytes, not of kinds.
    let small = format!(
        "{head}fn helper(i: u32) -> u32 {{\n    var a: array<u32, 64>;\n    a[i] = i;\n    let b = a;\n    return b[i / 2u];\n}}\n@compute @workgroup_size(1)\nfn main() {{\n    out[0] = helper(out[1]);\n}}\n"
    );
    admission::admit(&job(&small, OUT, "main"), &Caps::default()).unwrap();
}

#[test]
fn override_sized_workgroup_arrays_count_at_their_value() {
    let src = "override n: u32 = 1048576;\n@group(0) @binding(0) var<storage, read_write> out: array<u32>;\nvar<workgroup> tile: array<u32, n>;\n@compute @workgroup_size(1)\nfn main() {\n    tile[out[1]] = 1u;\n    out[0] = tile[out[2]];\n}\n";
    let r = refused(&job(src, OUT, "main"));
    let text = r.to_string();
    assert!(
        text.contains("workgroup memory") && text.contains("4194304"),
        "{text}"
    );
    // Named at the entry point that uses it.
    assert_eq!(r.0[0].line, Some(5), "{text}");
}

#[test]
fn arrays_too_large_for_32_bits_are_refused_not_wrapped() {
    // 2³² bytes: a 32-bit size of this type would wrap to 0.
    let src = "@group(0) @binding(0) var<storage, read_write> out: array<u32>;\nvar<private> big: array<array<u32, 65536>, 16384>;\n@compute @workgroup_size(1)\nfn main() {\n    big[out[1]][out[2]] = 1u;\n    out[0] = big[out[2]][out[1]];\n}\n";
    let r = refused(&job(src, OUT, "main"));
    assert!(r.to_string().contains("exceeds"), "{r}");
}

/// Values the compiler makes from one another are not counted twice: a 12 KiB local
/// declared in a loop (its zero initializer), a lookup table indexed by constants
/// (its evaluated copies), an array of structs built from struct values.
#[test]
fn ordinary_kernels_near_the_cap_are_not_over_counted() {
    let head = "@group(0) @binding(0) var<storage, read_write> out: array<u32>;\n";
    let table: Vec<String> = (0..64)
        .map(|i| format!("{}u", i * 2654435761u64 % 4294967296))
        .collect();
    let uses: String = (0..64)
        .map(|i| format!("    h = (h ^ K[{i}]) * 16777619u;\n"))
        .collect();
    let sources = [
        format!(
            "{head}@compute @workgroup_size(1)\nfn main() {{\n    for (var i = 0u; i < 4u; i = i + 1u) {{\n        var a: array<u32, 3072>;\n        a[out[i]] = i;\n        out[i] = a[out[i + 4u]];\n    }}\n}}\n"
        ),
        format!(
            "{head}const K = array<u32, 64>({});\n@compute @workgroup_size(1)\nfn main() {{\n    var h = out[0];\n{uses}    out[1] = h;\n}}\n",
            table.join(", ")
        ),
        format!(
            "{head}struct P {{ a: vec4<u32>, b: vec4<u32> }}\n@compute @workgroup_size(1)\nfn main() {{\n    var ps = array<P, 4>(P(vec4(1u), vec4(2u)), P(vec4(3u), vec4(4u)), P(vec4(5u), vec4(6u)), P(vec4(7u), vec4(8u)));\n    out[0] = ps[out[1]].a.x;\n}}\n"
        ),
    ];
    for src in &sources {
        admission::admit(&job(src, OUT, "main"), &Caps::default())
            .unwrap_or_else(|e| panic!("{e}\n{src}"));
    }
}
