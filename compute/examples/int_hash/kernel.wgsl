// out[i] = 16 rounds of an integer mix over i, for every invocation of a 3-D grid.
// The index uses num_workgroups, so it is right only if the grid reads as one dispatch.
@group(0) @binding(0) var<storage, read_write> out: array<u32>;

fn mix(x: u32) -> u32 {
    var h = x;
    h = h ^ (h >> 16u);
    h = h * 0x7feb352du;
    h = h ^ (h >> 15u);
    h = h * 0x846ca68bu;
    h = h ^ (h >> 16u);
    return h;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let width = groups.x * 64u;
    let i = gid.x + gid.y * width + gid.z * width * groups.y;
    var h = i;
    for (var round = 0u; round < 16u; round = round + 1u) {
        h = mix(h + round);
    }
    out[i] = h;
}
