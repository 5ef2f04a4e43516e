//! Transparent slicing: run a grid as many short dispatches without the kernel knowing.
//!
//! [`rewrite`] changes a module's compute entry points so that `workgroup_id`,
//! `global_invocation_id` and `num_workgroups` read as they would in one whole
//! dispatch: each entry point becomes an ordinary function, called by a new entry point
//! that adds the slice's offset (from a uniform at `@group(3) @binding(0)`) to the
//! built-ins and reports the whole grid as `num_workgroups`.
//!
//! [`Cursor`] walks a grid in slices of whole planes, whole rows or parts of a row, and
//! [`SliceSizer`] picks how many workgroups the next slice gets from the measured time
//! of the last ones. Both are plain state machines: no GPU, no clock.

use std::time::Duration;

use naga::{
    AddressSpace, Arena, BinaryOperator, Binding, BuiltIn, EntryPoint, Expression, Function,
    FunctionArgument, GlobalVariable, Handle, Literal, Module, ResourceBinding, Scalar, Span,
    Statement, StructMember, Type, TypeInner, VectorSize,
};

use crate::admission::RUNNER_GROUP;

/// Binding of the runner's slice uniform inside [`RUNNER_GROUP`].
pub const SLICE_BINDING: u32 = 0;
/// Size of the slice uniform: `offset: vec3<u32>` at 0, `total: vec3<u32>` at 16.
pub const SLICE_UNIFORM_BYTES: u64 = 32;

/// The uniform's contents for one slice.
pub fn slice_uniform(offset: [u32; 3], total: [u32; 3]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for i in 0..3 {
        out[i * 4..i * 4 + 4].copy_from_slice(&offset[i].to_le_bytes());
        out[16 + i * 4..16 + i * 4 + 4].copy_from_slice(&total[i].to_le_bytes());
    }
    out
}

/// Why a module could not be rewritten.
#[derive(Debug, thiserror::Error)]
#[error("cannot prepare the kernel for slicing: {0}")]
pub struct RewriteError(String);

/// Rewrites every compute entry point of `module` to read its position from the slice
/// uniform. The module must have passed admission.
pub fn rewrite(module: &mut Module) -> Result<(), RewriteError> {
    let vec3_ty = module.types.insert(
        Type {
            name: None,
            inner: TypeInner::Vector {
                size: VectorSize::Tri,
                scalar: Scalar::U32,
            },
        },
        Span::UNDEFINED,
    );
    let slice_ty = module.types.insert(
        Type {
            name: Some("SpareSlice".into()),
            inner: TypeInner::Struct {
                members: vec![
                    StructMember {
                        name: Some("offset".into()),
                        ty: vec3_ty,
                        binding: None,
                        offset: 0,
                    },
                    StructMember {
                        name: Some("total".into()),
                        ty: vec3_ty,
                        binding: None,
                        offset: 16,
                    },
                ],
                span: SLICE_UNIFORM_BYTES as u32,
            },
        },
        Span::UNDEFINED,
    );
    let slice_var = module.global_variables.append(
        GlobalVariable {
            name: Some("spare_slice".into()),
            space: AddressSpace::Uniform,
            binding: Some(ResourceBinding {
                group: RUNNER_GROUP,
                binding: SLICE_BINDING,
            }),
            ty: slice_ty,
            init: None,
            memory_decorations: naga::MemoryDecorations::empty(),
        },
        Span::UNDEFINED,
    );

    let entry_points = std::mem::take(&mut module.entry_points);
    let mut rewritten = Vec::with_capacity(entry_points.len());
    for ep in entry_points {
        if ep.stage != naga::ShaderStage::Compute {
            rewritten.push(ep);
            continue;
        }
        rewritten.push(wrap(module, ep, slice_var, vec3_ty)?);
    }
    module.entry_points = rewritten;
    Ok(())
}

/// How one entry-point argument (or struct member) is adjusted.
#[derive(Clone, Copy)]
enum Adjust {
    Keep,
    WorkgroupId,
    GlobalId,
    NumWorkgroups,
}

fn adjust_for(binding: Option<&Binding>) -> Adjust {
    match binding {
        Some(Binding::BuiltIn(BuiltIn::WorkGroupId)) => Adjust::WorkgroupId,
        Some(Binding::BuiltIn(BuiltIn::GlobalInvocationId)) => Adjust::GlobalId,
        Some(Binding::BuiltIn(BuiltIn::NumWorkGroups)) => Adjust::NumWorkgroups,
        _ => Adjust::Keep,
    }
}

/// The runner's slice uniform as the wrapper reads it: the slice's first workgroup,
/// the whole grid, and the first workgroup's first invocation.
struct SliceValues {
    offset: Handle<Expression>,
    total: Handle<Expression>,
    base_invocation: Handle<Expression>,
}

impl SliceValues {
    /// Appends the loads of the uniform `global` (emitted expressions) to `exprs`;
    /// `literals` are the workgroup size's three dimensions.
    fn load(
        exprs: &mut Arena<Expression>,
        global: Handle<Expression>,
        vec3_ty: Handle<Type>,
        literals: Vec<Handle<Expression>>,
    ) -> SliceValues {
        let offset_ptr = exprs.append(
            Expression::AccessIndex {
                base: global,
                index: 0,
            },
            Span::UNDEFINED,
        );
        let offset = exprs.append(
            Expression::Load {
                pointer: offset_ptr,
            },
            Span::UNDEFINED,
        );
        let total_ptr = exprs.append(
            Expression::AccessIndex {
                base: global,
                index: 1,
            },
            Span::UNDEFINED,
        );
        let total = exprs.append(Expression::Load { pointer: total_ptr }, Span::UNDEFINED);
        let size_vec = exprs.append(
            Expression::Compose {
                ty: vec3_ty,
                components: literals,
            },
            Span::UNDEFINED,
        );
        let base_invocation = exprs.append(
            Expression::Binary {
                op: BinaryOperator::Multiply,
                left: offset,
                right: size_vec,
            },
            Span::UNDEFINED,
        );
        SliceValues {
            offset,
            total,
            base_invocation,
        }
    }

    /// `value` as the kernel must see it: shifted by the slice where it is a position.
    fn adjust(
        &self,
        exprs: &mut Arena<Expression>,
        value: Handle<Expression>,
        how: Adjust,
    ) -> Handle<Expression> {
        match how {
            Adjust::Keep => value,
            Adjust::WorkgroupId => exprs.append(
                Expression::Binary {
                    op: BinaryOperator::Add,
                    left: value,
                    right: self.offset,
                },
                Span::UNDEFINED,
            ),
            Adjust::GlobalId => exprs.append(
                Expression::Binary {
                    op: BinaryOperator::Add,
                    left: value,
                    right: self.base_invocation,
                },
                Span::UNDEFINED,
            ),
            Adjust::NumWorkgroups => self.total,
        }
    }
}

fn wrap(
    module: &mut Module,
    mut ep: EntryPoint,
    slice_var: Handle<GlobalVariable>,
    vec3_ty: Handle<Type>,
) -> Result<EntryPoint, RewriteError> {
    // The kernel itself becomes an ordinary function taking the same values.
    let mut inner = std::mem::take(&mut ep.function);
    let arguments: Vec<FunctionArgument> = inner.arguments.clone();
    for arg in &mut inner.arguments {
        arg.binding = None;
    }
    inner.name = Some(format!("spare_kernel_{}", ep.name));
    let inner = module.functions.append(inner, Span::UNDEFINED);

    let mut exprs: Arena<Expression> = Arena::new();
    // Expressions that need no `Emit` come first, then one contiguous emitted range.
    let global = exprs.append(Expression::GlobalVariable(slice_var), Span::UNDEFINED);
    let args: Vec<Handle<Expression>> = (0..arguments.len() as u32)
        .map(|i| exprs.append(Expression::FunctionArgument(i), Span::UNDEFINED))
        .collect();
    let size = ep.workgroup_size;
    let literals: Vec<Handle<Expression>> = size
        .iter()
        .map(|d| exprs.append(Expression::Literal(Literal::U32(*d)), Span::UNDEFINED))
        .collect();
    let emit_start = exprs.len();
    let slice = SliceValues::load(&mut exprs, global, vec3_ty, literals);
    let mut call_args = Vec::with_capacity(args.len());
    for (arg, value) in arguments.iter().zip(&args) {
        if arg.binding.is_some() {
            call_args.push(slice.adjust(&mut exprs, *value, adjust_for(arg.binding.as_ref())));
            continue;
        }
        // A struct of built-ins: rebuild it member by member.
        let TypeInner::Struct { members, .. } = &module.types[arg.ty].inner else {
            return Err(RewriteError(format!(
                "entry point {:?} has an argument without a binding",
                ep.name
            )));
        };
        let members = members.clone();
        let mut components = Vec::with_capacity(members.len());
        for (i, member) in members.iter().enumerate() {
            let field = exprs.append(
                Expression::AccessIndex {
                    base: *value,
                    index: i as u32,
                },
                Span::UNDEFINED,
            );
            components.push(slice.adjust(&mut exprs, field, adjust_for(member.binding.as_ref())));
        }
        call_args.push(exprs.append(
            Expression::Compose {
                ty: arg.ty,
                components,
            },
            Span::UNDEFINED,
        ));
    }
    let emitted = exprs.range_from(emit_start);
    let body = naga::Block::from_vec(vec![
        Statement::Emit(emitted),
        Statement::Call {
            function: inner,
            arguments: call_args,
            result: None,
        },
        Statement::Return { value: None },
    ]);
    ep.function = Function {
        name: Some(ep.name.clone()),
        arguments,
        result: None,
        local_variables: Arena::new(),
        expressions: exprs,
        named_expressions: Default::default(),
        body,
        diagnostic_filter_leaf: None,
    };
    Ok(ep)
}

/// A box of workgroups to dispatch: where it starts and how big it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slice {
    /// First workgroup of the slice in the whole grid.
    pub offset: [u32; 3],
    /// Workgroups in each dimension.
    pub size: [u32; 3],
}

impl Slice {
    /// Workgroups in the slice.
    pub fn workgroups(&self) -> u64 {
        self.size.iter().map(|d| u64::from(*d)).product()
    }
}

/// The position in a grid: everything before it has run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cursor {
    /// The whole grid.
    pub grid: [u32; 3],
    /// The next workgroup to run, as `[x, y, z]`.
    pub next: [u32; 3],
    /// True once the whole grid ran.
    pub done: bool,
}

impl Cursor {
    /// The start of `grid`.
    pub fn new(grid: [u32; 3]) -> Self {
        Self {
            grid,
            next: [0; 3],
            done: grid.contains(&0),
        }
    }

    /// The next slice of at most `budget` workgroups (at least one), and moves past it.
    pub fn take(&mut self, budget: u64) -> Option<Slice> {
        if self.done {
            return None;
        }
        // A position outside the grid (only from a damaged checkpoint) ends the walk
        // rather than dispatching outside the grid.
        if self.next.iter().zip(self.grid).any(|(n, g)| *n >= g) {
            self.done = true;
            return None;
        }
        let budget = budget.max(1);
        let [gx, gy, gz] = self.grid.map(u64::from);
        let [x, y, z] = self.next;
        let slice = if x == 0 && y == 0 && budget >= gx * gy {
            let planes = (budget / (gx * gy)).min(gz - u64::from(z)) as u32;
            Slice {
                offset: [0, 0, z],
                size: [self.grid[0], self.grid[1], planes],
            }
        } else if x == 0 && budget >= gx {
            let rows = (budget / gx).min(gy - u64::from(y)) as u32;
            Slice {
                offset: [0, y, z],
                size: [self.grid[0], rows, 1],
            }
        } else {
            let run = budget.min(gx - u64::from(x)) as u32;
            Slice {
                offset: [x, y, z],
                size: [run, 1, 1],
            }
        };
        // Advance past the slice.
        let end = [
            slice.offset[0] + slice.size[0],
            slice.offset[1] + slice.size[1],
            slice.offset[2] + slice.size[2],
        ];
        if slice.size[0] < self.grid[0] {
            // Part of a row.
            self.next = [end[0], y, z];
        } else if slice.size[1] < self.grid[1] {
            self.next = [0, end[1], z];
        } else {
            self.next = [0, 0, end[2]];
        }
        if self.next[0] >= self.grid[0] {
            self.next = [0, self.next[1] + 1, self.next[2]];
        }
        if self.next[1] >= self.grid[1] {
            self.next = [0, 0, self.next[2] + 1];
        }
        if self.next[2] >= self.grid[2] {
            self.done = true;
        }
        Some(slice)
    }
}

/// How long slices may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Budget {
    /// The owner may come back: short slices, so yielding is quick (~10 ms).
    Active,
    /// The owner is away: longer slices, less overhead (~200 ms).
    Idle,
}

impl Budget {
    /// The slice time aimed at.
    pub fn target(self) -> Duration {
        match self {
            Budget::Active => Duration::from_millis(10),
            Budget::Idle => Duration::from_millis(200),
        }
    }
}

/// No slice is planned to take longer than this, whatever the budget.
pub const CEILING: Duration = Duration::from_millis(500);

/// Picks slice sizes from measured slice times: shrinks at once after a slow slice,
/// grows at most fourfold per slice.
#[derive(Clone, Debug)]
pub struct SliceSizer {
    /// Measured workgroups per second, smoothed; `None` before the first slice.
    rate: Option<f64>,
}

/// The first slice of a job is small, to measure the kernel's speed.
const PROBE_WORKGROUPS: u64 = 1;

impl Default for SliceSizer {
    fn default() -> Self {
        Self::new()
    }
}

impl SliceSizer {
    /// A sizer that knows nothing yet.
    pub fn new() -> Self {
        Self { rate: None }
    }

    /// Workgroups for the next slice under `budget`.
    pub fn next(&self, budget: Budget) -> u64 {
        let Some(rate) = self.rate else {
            return PROBE_WORKGROUPS;
        };
        let target = budget.target().min(CEILING).as_secs_f64();
        (rate * target).floor().max(1.0) as u64
    }

    /// Records that `workgroups` took `elapsed`.
    pub fn record(&mut self, workgroups: u64, elapsed: Duration) {
        let secs = elapsed.as_secs_f64().max(1e-6);
        let measured = workgroups as f64 / secs;
        self.rate = Some(match self.rate {
            None => measured,
            // Slow down at once (a slow slice delays the owner). Speed up at most
            // fourfold per slice, so one fast outlier cannot make a slice too long; a
            // small slice's fixed cost makes its rate an underestimate, so growth is
            // what the first slices of a job need.
            Some(old) if measured < old => measured,
            Some(old) => measured.min(old * 4.0),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_all(grid: [u32; 3], budget: u64) -> Vec<Slice> {
        let mut cursor = Cursor::new(grid);
        let mut out = Vec::new();
        while let Some(s) = cursor.take(budget) {
            out.push(s);
            assert!(out.len() < 1_000_000);
        }
        out
    }

    /// Every workgroup of the grid is covered exactly once, for many shapes and budgets.
    #[test]
    fn slices_cover_the_grid_exactly_once() {
        for grid in [
            [1, 1, 1],
            [7, 1, 1],
            [5, 3, 1],
            [4, 3, 2],
            [3, 5, 7],
            [65535, 1, 1],
        ] {
            for budget in [1, 2, 3, 4, 5, 11, 15, 16, 100, 1 << 20] {
                let slices = run_all(grid, budget);
                let mut seen = std::collections::HashSet::new();
                for s in &slices {
                    assert!(s.workgroups() <= budget.max(1), "{s:?} over {budget}");
                    for z in s.offset[2]..s.offset[2] + s.size[2] {
                        for y in s.offset[1]..s.offset[1] + s.size[1] {
                            for x in s.offset[0]..s.offset[0] + s.size[0] {
                                assert!(x < grid[0] && y < grid[1] && z < grid[2]);
                                assert!(seen.insert((x, y, z)), "{grid:?} {budget}: twice");
                            }
                        }
                    }
                }
                let total = grid.iter().map(|d| *d as usize).product::<usize>();
                assert_eq!(seen.len(), total, "{grid:?} budget {budget}");
            }
        }
    }

    #[test]
    fn sizer_probes_then_aims_at_the_budget() {
        let mut sizer = SliceSizer::new();
        assert_eq!(sizer.next(Budget::Active), 1);
        sizer.record(1, Duration::from_micros(100)); // 10,000 workgroups/s
        assert_eq!(sizer.next(Budget::Active), 100);
        assert_eq!(sizer.next(Budget::Idle), 2_000);
        // A slow slice shrinks the next one at once.
        sizer.record(100, Duration::from_millis(100));
        assert_eq!(sizer.next(Budget::Active), 10);
        // A fast one grows it at most fourfold.
        sizer.record(10, Duration::from_micros(1));
        assert_eq!(sizer.next(Budget::Active), 40);
    }

    #[test]
    fn uniform_layout() {
        let u = slice_uniform([1, 2, 3], [4, 5, 6]);
        assert_eq!(&u[0..4], &1u32.to_le_bytes());
        assert_eq!(&u[8..12], &3u32.to_le_bytes());
        assert_eq!(&u[16..20], &4u32.to_le_bytes());
        assert_eq!(&u[24..28], &6u32.to_le_bytes());
    }
}
