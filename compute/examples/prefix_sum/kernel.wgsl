// Inclusive prefix sum of 4,096 u32 values in place, in three steps: scan each block
// of 256, scan the block totals, add each block's offset.
@group(0) @binding(0) var<storage, read_write> data: array<u32>;
@group(0) @binding(1) var<storage, read_write> blocks: array<u32>;

var<workgroup> tile: array<u32, 256>;

fn scan_tile(li: u32) {
    for (var offset = 1u; offset < 256u; offset = offset << 1u) {
        var before = 0u;
        if li >= offset {
            before = tile[li - offset];
        }
        workgroupBarrier();
        tile[li] = tile[li] + before;
        workgroupBarrier();
    }
}

@compute @workgroup_size(256)
fn scan_blocks(
    @builtin(local_invocation_index) li: u32,
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(global_invocation_id) gid: vec3<u32>,
) {
    tile[li] = data[gid.x];
    workgroupBarrier();
    scan_tile(li);
    data[gid.x] = tile[li];
    if li == 255u {
        blocks[wg.x] = tile[255];
    }
}

@compute @workgroup_size(256)
fn scan_totals(@builtin(local_invocation_index) li: u32) {
    let n = arrayLength(&blocks);
    var own = 0u;
    if li < n {
        own = blocks[li];
    }
    tile[li] = own;
    workgroupBarrier();
    scan_tile(li);
    if li < n {
        blocks[li] = tile[li] - own;
    }
}

@compute @workgroup_size(256)
fn add_offsets(@builtin(workgroup_id) wg: vec3<u32>, @builtin(global_invocation_id) gid: vec3<u32>) {
    data[gid.x] = data[gid.x] + blocks[wg.x];
}
