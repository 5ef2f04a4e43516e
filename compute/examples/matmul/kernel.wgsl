// C = A × B for n × n f32 matrices (n from the uniform), one invocation per element.
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> dims: vec4<u32>;

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n = dims.x;
    let row = gid.y;
    let col = gid.x;
    if row >= n || col >= n {
        return;
    }
    var acc = 0.0;
    for (var k = 0u; k < n; k = k + 1u) {
        acc = acc + a[row * n + k] * b[k * n + col];
    }
    c[row * n + col] = acc;
}
