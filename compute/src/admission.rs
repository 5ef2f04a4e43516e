//! Admission: checks a job on the CPU, with naga, before any device sees it.
//!
//! A job is refused unless its WGSL parses and validates, every step's entry point is
//! a compute entry point within the WebGPU default limits, its memory use is within
//! Spare's caps, and its buffers match what the shader declares. Every refusal says
//! where (line and column when there is a place in the source) and what to change.

use std::collections::BTreeMap;
use std::fmt;

use naga::valid::{Capabilities, GlobalUse, ModuleInfo, ValidationFlags, Validator};
use naga::{AddressSpace, Module, ShaderStage, StorageAccess};

use crate::manifest::{BindingKind, BindingRef, Job, MAX_SOURCE_BYTES};

/// Private (per-invocation) memory cap, in bytes.
pub const MAX_PRIVATE_BYTES: u64 = 16 * 1024;
/// Workgroup memory cap, in bytes (the WebGPU default limit).
pub const MAX_WORKGROUP_BYTES: u64 = 16 * 1024;
/// Invocations per workgroup (the WebGPU default limit).
pub const MAX_INVOCATIONS: u32 = 256;
/// Workgroup size per dimension (the WebGPU default limits).
pub const MAX_WORKGROUP_SIZE: [u32; 3] = [256, 256, 64];
/// Workgroups per grid dimension (the WebGPU default limit).
pub const MAX_WORKGROUPS_PER_DIMENSION: u32 = 65_535;
/// One storage buffer (the WebGPU default `maxStorageBufferBindingSize`); a manifest
/// limit too, so it is defined with the manifest.
pub use crate::manifest::MAX_BUFFER_BYTES;
/// One uniform buffer (the WebGPU default `maxUniformBufferBindingSize`).
pub const MAX_UNIFORM_BYTES: u64 = 64 * 1024;
/// Storage buffers per shader stage (the WebGPU default).
pub const MAX_STORAGE_BUFFERS: usize = 8;
/// Uniform buffers per shader stage (the WebGPU default, less the runner's own).
pub const MAX_UNIFORM_BUFFERS: usize = 11;
/// The bind group the runner keeps for itself (the slice position).
pub const RUNNER_GROUP: u32 = 3;
/// Repeats of one step.
pub const MAX_REPEAT: u32 = 1_000_000;

/// A job that passed admission: the only kind the supervisor runs, so a process admits
/// a job once, where it arrives (the node's job service, `spare job run-local`). The
/// worker, a process of its own, admits what it is sent again before the device sees
/// it.
#[derive(Clone, Debug)]
pub struct AdmittedJob(Job);

impl AdmittedJob {
    /// Admits `job` under `caps`.
    pub fn admit(job: Job, caps: &Caps) -> Result<AdmittedJob, Refused> {
        admit(&job, caps)?;
        Ok(AdmittedJob(job))
    }

    /// The job.
    pub fn job(&self) -> &Job {
        &self.0
    }
}

impl std::ops::Deref for AdmittedJob {
    type Target = Job;

    fn deref(&self) -> &Job {
        &self.0
    }
}

/// What admission allows; the budget is the node owner's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    /// All buffers of one job together, in bytes.
    pub total_buffer_bytes: u64,
}

impl Default for Caps {
    fn default() -> Self {
        Self {
            total_buffer_bytes: 512 * 1024 * 1024,
        }
    }
}

/// One reason a job was refused.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Rejection {
    /// 1-based line in the WGSL source, when the problem has a place there.
    pub line: Option<u32>,
    /// 1-based column.
    pub column: Option<u32>,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, "wgsl:{line}:{column}: {}", self.message),
            (Some(line), None) => write!(f, "wgsl:{line}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

/// Every reason a job was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("job refused:{}", .0.iter().map(|r| format!("\n  {r}")).collect::<String>())]
pub struct Refused(pub Vec<Rejection>);

/// A job that passed admission, with its validated module.
#[derive(Debug)]
pub struct Admitted {
    /// The parsed module, as written (not yet rewritten for slicing).
    pub module: Module,
    /// naga's analysis of it.
    pub info: ModuleInfo,
}

fn at(line: Option<u32>, column: Option<u32>, message: impl Into<String>) -> Rejection {
    Rejection {
        line,
        column,
        message: message.into(),
    }
}

fn nowhere(message: impl Into<String>) -> Rejection {
    at(None, None, message)
}

/// Parses and validates WGSL, with located errors.
pub fn parse_and_validate(source: &str) -> Result<(Module, ModuleInfo), Rejection> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(nowhere(format!(
            "the WGSL source is {} bytes; the limit is {MAX_SOURCE_BYTES}",
            source.len()
        )));
    }
    let module = naga::front::wgsl::parse_str(source).map_err(|e| {
        let loc = e.location(source);
        at(
            loc.map(|l| l.line_number),
            loc.map(|l| l.line_position),
            format!("syntax: {}", e.message()),
        )
    })?;
    let info = Validator::new(ValidationFlags::all(), Capabilities::default())
        .validate(&module)
        .map_err(|e| {
            let loc = e.location(source);
            at(
                loc.map(|l| l.line_number),
                loc.map(|l| l.line_position),
                format!("invalid: {}", error_chain(e.as_inner())),
            )
        })?;
    Ok((module, info))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        out.push_str(": ");
        out.push_str(&inner.to_string());
        source = inner.source();
    }
    out
}

/// Checks a job; on refusal returns every problem found.
pub fn admit(job: &Job, caps: &Caps) -> Result<Admitted, Refused> {
    let source = &job.source;
    let (module, info) = parse_and_validate(source).map_err(|r| Refused(vec![r]))?;
    let shader = Shader {
        source,
        module: &module,
        info: &info,
    };
    let mut problems = Vec::new();
    check_buffers(job, caps, &mut problems);
    check_shape(job, &mut problems);
    shader.check_private_memory(&mut problems);
    let declared = shader.declared_bindings(&mut problems);
    for (index, step) in job.steps.iter().enumerate() {
        shader.check_step(job, index, step, &declared, &mut problems);
    }
    problems.dedup();
    if problems.is_empty() {
        Ok(Admitted { module, info })
    } else {
        problems.sort_by_key(|p| (p.line.is_none(), p.line, p.column));
        Err(Refused(problems))
    }
}

/// The step and binding counts.
fn check_shape(job: &Job, problems: &mut Vec<Rejection>) {
    if job.steps.is_empty() || job.steps.len() > crate::manifest::MAX_STEPS {
        problems.push(nowhere(format!(
            "{} steps; a job has 1 to {}",
            job.steps.len(),
            crate::manifest::MAX_STEPS
        )));
    }
    if job.bindings.len() > crate::manifest::MAX_BINDINGS {
        problems.push(nowhere(format!(
            "{} bindings; a job has at most {}",
            job.bindings.len(),
            crate::manifest::MAX_BINDINGS
        )));
    }
}

/// The bindings a shader declares, by where they are bound.
type Declared = BTreeMap<BindingRef, (BindingKind, naga::Handle<naga::GlobalVariable>)>;

/// One shader under admission: its source (for locations), module and analysis.
struct Shader<'a> {
    source: &'a str,
    module: &'a Module,
    info: &'a ModuleInfo,
}

impl Shader<'_> {
    /// The line and column of `span`, when it has a place in the source.
    fn span_loc(&self, span: naga::Span) -> (Option<u32>, Option<u32>) {
        let loc = span.location(self.source);
        if span.is_defined() {
            (Some(loc.line_number), Some(loc.line_position))
        } else {
            (None, None)
        }
    }

    /// Private memory per invocation: every byte a shader can hold per invocation,
    /// however it is declared: private globals, module constants of array or struct
    /// type, and in every function its locals and every array- or struct-valued
    /// expression (`let` and `const` values, arguments, results, constructors). WGSL
    /// has no recursion, so no call chain can hold more than all functions together.
    /// Refused over the cap at the place of the largest.
    fn check_private_memory(&self, problems: &mut Vec<Rejection>) {
        let module = self.module;
        // (bytes, where) of everything that holds private memory.
        let mut held: Vec<(u64, naga::Span)> = Vec::new();
        for (handle, var) in module.global_variables.iter() {
            if var.space == AddressSpace::Private {
                let bytes = type_bytes(module, &module.types[var.ty].inner);
                held.push((bytes, module.global_variables.get_span(handle)));
            }
        }
        for (handle, constant) in module.constants.iter() {
            let inner = &module.types[constant.ty].inner;
            if is_composite(inner) {
                held.push((type_bytes(module, inner), module.constants.get_span(handle)));
            }
        }
        // In a function: its locals, its arguments, its named values (`let`) and every
        // value indexed at run time (spilled to memory) all count; of the other array
        // and struct temporaries (constructors, results, loads) the largest counts, as
        // a bound on what the compiler keeps at once without over-counting values that
        // are evaluated into one another (a local's initializer, a constant's copies).
        let function_held = |function: &naga::Function, info: &naga::valid::FunctionInfo| {
            let mut held = Vec::new();
            for (handle, local) in function.local_variables.iter() {
                let bytes = type_bytes(module, &module.types[local.ty].inner);
                held.push((bytes, function.local_variables.get_span(handle)));
            }
            // Values stored whole into a local (its initializer, `a = array(...)`)
            // are the local's bytes, counted with it.
            let mut into_locals: std::collections::HashSet<_> = function
                .local_variables
                .iter()
                .filter_map(|(_, l)| l.init)
                .collect();
            stores_into_locals(function, &function.body, &mut into_locals);
            // A value indexed by a runtime index is spilled to memory of its own.
            let indexed: std::collections::HashSet<_> = function
                .expressions
                .iter()
                .filter_map(|(_, e)| match e {
                    naga::Expression::Access { base, .. } => Some(*base),
                    _ => None,
                })
                .collect();
            let mut largest_temporary: Option<(u64, naga::Span)> = None;
            for (handle, expression) in function.expressions.iter() {
                // A module constant is counted once, above, wherever it is used.
                if matches!(expression, naga::Expression::Constant(_))
                    || into_locals.contains(&handle)
                {
                    continue;
                }
                let inner = info[handle].ty.inner_with(&module.types);
                if !is_composite(inner) {
                    continue;
                }
                let item = (
                    type_bytes(module, inner),
                    function.expressions.get_span(handle),
                );
                let lives_for_the_call = function.named_expressions.contains_key(&handle)
                    || matches!(expression, naga::Expression::FunctionArgument(_))
                    || indexed.contains(&handle);
                if lives_for_the_call {
                    held.push(item);
                } else if largest_temporary.is_none_or(|(bytes, _)| item.0 > bytes) {
                    largest_temporary = Some(item);
                }
            }
            held.extend(largest_temporary);
            held
        };
        for (handle, function) in module.functions.iter() {
            held.extend(function_held(function, &self.info[handle]));
        }
        // One entry point runs per dispatch: the largest counts.
        let entry = module
            .entry_points
            .iter()
            .enumerate()
            .map(|(i, ep)| function_held(&ep.function, self.info.get_entry_point(i)))
            .max_by_key(|held| held.iter().map(|(b, _)| *b).fold(0u64, u64::saturating_add))
            .unwrap_or_default();
        held.extend(entry);
        let private = held.iter().map(|(b, _)| *b).fold(0u64, u64::saturating_add);
        if private > MAX_PRIVATE_BYTES {
            let (largest, span) = held
                .iter()
                .copied()
                .max_by_key(|(b, _)| *b)
                .unwrap_or((private, naga::Span::UNDEFINED));
            let (line, column) = self.span_loc(span);
            let total = if private == u64::MAX {
                "more than 2⁶⁴".to_owned()
            } else {
                private.to_string()
            };
            problems.push(at(
                line,
                column,
                format!(
                    "private memory per invocation is up to {total} bytes (the largest part, \
                     here, {largest} bytes); the limit is {MAX_PRIVATE_BYTES}: keep big arrays \
                     in storage or workgroup buffers"
                ),
            ));
        }
    }

    /// The buffers the shader declares; those Spare cannot bind are problems.
    fn declared_bindings(&self, problems: &mut Vec<Rejection>) -> Declared {
        let module = self.module;
        let span_loc = |span| self.span_loc(span);
        // Declared buffers must be buffers Spare can bind, outside the runner's group.
        let mut declared = Declared::new();
        for (handle, var) in module.global_variables.iter() {
            let Some(binding) = &var.binding else {
                continue;
            };
            let r = BindingRef {
                group: binding.group,
                binding: binding.binding,
            };
            let (line, column) = span_loc(module.global_variables.get_span(handle));
            let kind = match var.space {
                AddressSpace::Storage { access } if access.contains(StorageAccess::STORE) => {
                    BindingKind::StorageReadWrite
                }
                AddressSpace::Storage { .. } => BindingKind::StorageRead,
                AddressSpace::Uniform => BindingKind::Uniform,
                _ => {
                    problems.push(at(
                        line,
                        column,
                        format!("{r}: only storage and uniform buffers can be bound (no textures or samplers)"),
                    ));
                    continue;
                }
            };
            if r.group >= RUNNER_GROUP {
                problems.push(at(
                    line,
                    column,
                    format!(
                        "{r}: bind groups 0 to 2 are for jobs; group {RUNNER_GROUP} is the runner's"
                    ),
                ));
                continue;
            }
            declared.insert(r, (kind, handle));
        }
        declared
    }

    /// One step: its entry point, workgroup size, grid and repeat, and what the entry
    /// point uses (bindings against the manifest, workgroup memory).
    fn check_step(
        &self,
        job: &Job,
        index: usize,
        step: &crate::manifest::Step,
        declared: &Declared,
        problems: &mut Vec<Rejection>,
    ) {
        let (module, source) = (self.module, self.source);
        let name = &step.entry_point;
        let Some(ep_index) = module.entry_points.iter().position(|ep| ep.name == *name) else {
            let available: Vec<&str> = module
                .entry_points
                .iter()
                .filter(|ep| ep.stage == ShaderStage::Compute)
                .map(|ep| ep.name.as_str())
                .collect();
            problems.push(nowhere(format!(
                "step {index}: no entry point named {name:?}; the shader's compute entry points \
                 are {available:?}"
            )));
            return;
        };
        let ep = &module.entry_points[ep_index];
        let (line, column) = entry_location(source, name);
        if ep.workgroup_size_overrides.is_some() {
            problems.push(at(
                line,
                column,
                format!(
                    "entry point {name:?}: @workgroup_size with `override` values is not \
                     supported; write the size as constants"
                ),
            ));
            return;
        }
        if ep.stage != ShaderStage::Compute {
            problems.push(at(
                line,
                column,
                format!("entry point {name:?} is not @compute"),
            ));
            return;
        }
        let size = ep.workgroup_size;
        let invocations = size.iter().map(|d| u64::from(*d)).product::<u64>();
        if invocations > u64::from(MAX_INVOCATIONS)
            || size.iter().zip(MAX_WORKGROUP_SIZE).any(|(d, max)| *d > max)
        {
            problems.push(at(
                line,
                column,
                format!(
                    "entry point {name:?}: @workgroup_size({}, {}, {}) is {invocations} \
                     invocations; allowed at most {MAX_INVOCATIONS} in all and {:?} per \
                     dimension",
                    size[0], size[1], size[2], MAX_WORKGROUP_SIZE
                ),
            ));
        }
        if step
            .workgroups
            .iter()
            .any(|d| *d == 0 || *d > MAX_WORKGROUPS_PER_DIMENSION)
        {
            problems.push(nowhere(format!(
                "step {index}: grid {:?} must have 1 to {MAX_WORKGROUPS_PER_DIMENSION} workgroups \
                 in each dimension",
                step.workgroups
            )));
        }
        if step.repeat == 0 || step.repeat > MAX_REPEAT {
            problems.push(nowhere(format!(
                "step {index}: repeat {} must be 1 to {MAX_REPEAT}",
                step.repeat
            )));
        }
        self.check_uses(job, ep_index, name, (line, column), declared, problems);
    }

    /// What an entry point uses: every binding against the manifest, and its
    /// workgroup memory against the cap.
    fn check_uses(
        &self,
        job: &Job,
        ep_index: usize,
        name: &str,
        (line, column): (Option<u32>, Option<u32>),
        declared: &Declared,
        problems: &mut Vec<Rejection>,
    ) {
        let (module, info) = (self.module, self.info);
        let span_loc = |span| self.span_loc(span);
        let ep_info = info.get_entry_point(ep_index);
        let mut workgroup = 0u64;
        for (handle, var) in module.global_variables.iter() {
            if ep_info[handle] == GlobalUse::empty() {
                continue;
            }
            if var.space == AddressSpace::WorkGroup {
                workgroup =
                    workgroup.saturating_add(type_bytes(module, &module.types[var.ty].inner));
            }
            let Some(binding) = &var.binding else {
                continue;
            };
            let r = BindingRef {
                group: binding.group,
                binding: binding.binding,
            };
            let Some((shader_kind, _)) = declared.get(&r) else {
                continue;
            };
            let (line, column) = span_loc(module.global_variables.get_span(handle));
            match job.bindings.iter().find(|b| b.at == r) {
                None => problems.push(at(
                    line,
                    column,
                    format!("{r} is used by {name:?} but the manifest has no such binding"),
                )),
                Some(b) if b.kind != *shader_kind => problems.push(at(
                    line,
                    column,
                    format!(
                        "{r}: the shader declares it {} but the manifest says {}",
                        kind_name(*shader_kind),
                        kind_name(b.kind)
                    ),
                )),
                Some(b) => {
                    let min = u64::from(module.types[var.ty].inner.size(module.to_ctx()));
                    if (b.bytes.len() as u64) < min {
                        problems.push(at(
                            line,
                            column,
                            format!(
                                "{r}: the buffer is {} bytes but the shader's type needs at \
                                 least {min}",
                                b.bytes.len()
                            ),
                        ));
                    }
                }
            }
        }
        if workgroup > MAX_WORKGROUP_BYTES {
            problems.push(at(
                line,
                column,
                format!(
                    "entry point {name:?} uses {workgroup} bytes of workgroup memory; the limit \
                     is {MAX_WORKGROUP_BYTES}"
                ),
            ));
        }
    }
}

/// The values of `block`'s stores whose target is a local variable itself.
fn stores_into_locals(
    function: &naga::Function,
    block: &naga::Block,
    out: &mut std::collections::HashSet<naga::Handle<naga::Expression>>,
) {
    use naga::Statement;
    for statement in block.iter() {
        match statement {
            Statement::Store { pointer, value } => {
                if matches!(
                    function.expressions[*pointer],
                    naga::Expression::LocalVariable(_)
                ) {
                    out.insert(*value);
                }
            }
            Statement::Block(inner) => stores_into_locals(function, inner, out),
            Statement::If { accept, reject, .. } => {
                stores_into_locals(function, accept, out);
                stores_into_locals(function, reject, out);
            }
            Statement::Switch { cases, .. } => {
                for case in cases {
                    stores_into_locals(function, &case.body, out);
                }
            }
            Statement::Loop {
                body, continuing, ..
            } => {
                stores_into_locals(function, body, out);
                stores_into_locals(function, continuing, out);
            }
            _ => {}
        }
    }
}

/// Arrays and structs: the values that can be large.
fn is_composite(inner: &naga::TypeInner) -> bool {
    matches!(
        inner,
        naga::TypeInner::Array { .. } | naga::TypeInner::Struct { .. }
    )
}

/// Bytes a value of type `inner` takes, in 64 bits, saturating (naga's own `size` is
/// 32-bit, and counts an array sized by an override as one element). An array sized
/// by an override counts at the override's value (only a literal one is accepted:
/// anything else counts as unbounded); a runtime-sized array counts nothing (it lives
/// in a storage buffer).
fn type_bytes(module: &Module, inner: &naga::TypeInner) -> u64 {
    use naga::{ArraySize, TypeInner};
    match inner {
        TypeInner::Array { base, size, stride } => {
            let count = match size {
                ArraySize::Constant(n) => u64::from(n.get()),
                ArraySize::Pending(o) => override_value(module, *o).unwrap_or(u64::MAX),
                ArraySize::Dynamic => 0,
            };
            let element = u64::from(*stride).max(type_bytes(module, &module.types[*base].inner));
            count.saturating_mul(element)
        }
        TypeInner::Struct { members, span } => {
            let members = members
                .iter()
                .map(|m| type_bytes(module, &module.types[m.ty].inner))
                .fold(0u64, u64::saturating_add);
            members.max(u64::from(*span))
        }
        other => u64::from(other.size(module.to_ctx())),
    }
}

/// The value of an override whose initializer is an integer literal.
fn override_value(module: &Module, handle: naga::Handle<naga::Override>) -> Option<u64> {
    let init = module.overrides[handle].init?;
    match module.global_expressions[init] {
        naga::Expression::Literal(naga::Literal::U32(n)) => Some(u64::from(n)),
        naga::Expression::Literal(naga::Literal::I32(n)) => u64::try_from(n).ok(),
        naga::Expression::Literal(naga::Literal::AbstractInt(n)) => u64::try_from(n).ok(),
        _ => None,
    }
}

fn check_buffers(job: &Job, caps: &Caps, problems: &mut Vec<Rejection>) {
    let mut total = 0u64;
    let (mut storage, mut uniform) = (0, 0);
    for b in &job.bindings {
        let len = b.bytes.len() as u64;
        total += len;
        let r = b.at;
        if r.group >= RUNNER_GROUP {
            problems.push(nowhere(format!(
                "manifest binding {r}: bind groups 0 to 2 are for jobs; group {RUNNER_GROUP} is \
                 the runner's"
            )));
        }
        if len == 0 || !len.is_multiple_of(4) {
            problems.push(nowhere(format!(
                "manifest binding {r}: {len} bytes; a buffer must be a non-zero multiple of 4 bytes"
            )));
        }
        let max = match b.kind {
            BindingKind::Uniform => {
                uniform += 1;
                MAX_UNIFORM_BYTES
            }
            BindingKind::StorageRead | BindingKind::StorageReadWrite => {
                storage += 1;
                MAX_BUFFER_BYTES
            }
        };
        if len > max {
            problems.push(nowhere(format!(
                "manifest binding {r}: {len} bytes; the limit for a {} buffer is {max}",
                kind_name(b.kind)
            )));
        }
    }
    if total > caps.total_buffer_bytes {
        problems.push(nowhere(format!(
            "the job's buffers total {total} bytes; this node accepts at most {}",
            caps.total_buffer_bytes
        )));
    }
    if storage > MAX_STORAGE_BUFFERS || uniform > MAX_UNIFORM_BUFFERS {
        problems.push(nowhere(format!(
            "{storage} storage and {uniform} uniform buffers; allowed at most \
             {MAX_STORAGE_BUFFERS} and {MAX_UNIFORM_BUFFERS}"
        )));
    }
}

fn kind_name(kind: BindingKind) -> &'static str {
    match kind {
        BindingKind::StorageRead => "storage_read",
        BindingKind::StorageReadWrite => "storage_read_write",
        BindingKind::Uniform => "uniform",
    }
}

/// The line and column of `fn name` in the source, for entry-point problems.
fn entry_location(source: &str, name: &str) -> (Option<u32>, Option<u32>) {
    let needle = format!("fn {name}");
    for (i, line) in source.lines().enumerate() {
        if let Some(col) = line.find(&needle) {
            let rest = &line[col + needle.len()..];
            if rest.starts_with(|c: char| c == '(' || c.is_whitespace()) {
                return (Some(i as u32 + 1), Some(col as u32 + 1));
            }
        }
    }
    (None, None)
}
