// Sum of 65,536 u32 values in two steps: 256 partial sums in workgroup memory, then
// one workgroup adds the partials.
@group(0) @binding(0) var<storage, read> input: array<u32>;
@group(0) @binding(1) var<storage, read_write> partial: array<u32>;
@group(0) @binding(2) var<storage, read_write> total: array<u32>;

var<workgroup> scratch: array<u32, 256>;

fn reduce_scratch(li: u32) {
    for (var stride = 128u; stride > 0u; stride = stride >> 1u) {
        if li < stride {
            scratch[li] = scratch[li] + scratch[li + stride];
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(256)
fn partial_sums(
    @builtin(local_invocation_index) li: u32,
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(global_invocation_id) gid: vec3<u32>,
) {
    scratch[li] = input[gid.x];
    workgroupBarrier();
    reduce_scratch(li);
    if li == 0u {
        partial[wg.x] = scratch[0];
    }
}

@compute @workgroup_size(256)
fn final_sum(@builtin(local_invocation_index) li: u32) {
    scratch[li] = partial[li];
    workgroupBarrier();
    reduce_scratch(li);
    if li == 0u {
        total[0] = scratch[0];
    }
}
