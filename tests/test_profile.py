"""`vrash-bench profile`: a trace's kernels attributed to the compiled step's parts. Checked
against the HLO's own count of what each loop launches, and against a hand-written trace of an
accelerator and its HLO; never how fast anything is."""
import jax
import pytest

from experiments.bench import bench_train, hlo_loops, profile_step
from experiments.configs import model_config

# A compiled module as XLA prints it, cut to what the attribution reads: a decoder's loop over
# time whose body launches a matmul fusion and an elementwise one, and a copy outside the loop.
HLO = '''HloModule jit_train_step, is_scheduled=true

%fused_dot (p0: f32[8,16], p1: f32[16,16]) -> f32[8,16] {
  %p0 = f32[8,16]{1,0} parameter(0)
  %p1 = f32[16,16]{1,0} parameter(1)
  ROOT %d = f32[8,16]{1,0} dot(%p0, %p1), lhs_contracting_dims={1}, rhs_contracting_dims={0}
}

%fused_tanh (p0.1: f32[8,16]) -> f32[8,16] {
  %p0.1 = f32[8,16]{1,0} parameter(0)
  ROOT %t = f32[8,16]{1,0} tanh(%p0.1)
}

%body (arg: (f32[8,16], f32[16,16])) -> (f32[8,16], f32[16,16]) {
  %arg = (f32[8,16]{1,0}, f32[16,16]{1,0}) parameter(0)
  %h = f32[8,16]{1,0} get-tuple-element(%arg), index=0
  %w = f32[16,16]{1,0} get-tuple-element(%arg), index=1
  %gemm_fusion_dot.3 = f32[8,16]{1,0} fusion(%h, %w), kind=kCustom, calls=%fused_dot
  %loop_fusion.1 = f32[8,16]{1,0} fusion(%gemm_fusion_dot.3), kind=kLoop, calls=%fused_tanh
  ROOT %tuple = (f32[8,16]{1,0}, f32[16,16]{1,0}) tuple(%loop_fusion.1, %w)
}

%cond (arg.1: (f32[8,16], f32[16,16])) -> pred[] {
  %arg.1 = (f32[8,16]{1,0}, f32[16,16]{1,0}) parameter(0)
  ROOT %c = pred[] constant(false)
}

ENTRY %main (x: f32[8,16], y: f32[16,16]) -> (f32[8,16], f32[16,16]) {
  %x = f32[8,16]{1,0} parameter(0)
  %y = f32[16,16]{1,0} parameter(1)
  %copy.2 = f32[8,16]{1,0} copy(%x)
  %init = (f32[8,16]{1,0}, f32[16,16]{1,0}) tuple(%copy.2, %y)
  ROOT %while.1 = (f32[8,16]{1,0}, f32[16,16]{1,0}) while(%init), condition=%cond, body=%body, \
metadata={op_name="jit(train_step)/MelodyModel.decode/decoder/while"}
}
'''


def _event(name_id: int, start_us: float, us: float, *stats: tuple[int, int]) -> str:
  refs = ' '.join(f'stats {{ metadata_id: {key} ref_value: {value} }}' for key, value in stats)
  return f'events {{ metadata_id: {name_id} offset_ps: {int(start_us * 1e6)} duration_ps: {int(us * 1e6)} {refs} }}'


def _trace() -> jax.profiler.ProfileData:
  """Two steps on a GPU: per step the loop's two kernels (the matmul named by an hlo_op stat; the
  other run in a command buffer, which its hlo_op stat names, so that only its kernel name
  tells), the copy (named in a kernel annotation) and a memcpy of no instruction; an 'XLA Ops'
  line, a second GPU and the host, none of which is read."""
  kernels = []
  for step in range(2):
    t = step * 100
    kernels += [_event(1, t, 3, (1, 11)), _event(2, t + 4, 1, (1, 13)), _event(3, t + 6, 5, (2, 12)),
                _event(4, t + 12, 0.5)]
  names = {1: 'gemm_fusion_dot_3_0', 2: 'loop_fusion_1', 3: 'copy_2', 4: 'MemcpyD2H'}
  metadata = ' '.join(f'event_metadata {{ key: {k} value {{ id: {k} name: "{v}" }} }}' for k, v in names.items())
  values = {1: 'hlo_op', 2: 'kernel_annotation', 11: 'gemm_fusion_dot.3',  # a string stat refers to its value
            12: 'copy.2:#hlo_op=copy.2,hlo_module=jit_train_step#', 13: 'command_buffer_1'}
  stats = ' '.join(f'stat_metadata {{ key: {k} value {{ id: {k} name: "{v}" }} }}' for k, v in values.items())
  return jax.profiler.ProfileData.from_text_proto(f'''
planes {{ id: 1 name: "/device:GPU:0"
  lines {{ id: 1 name: "Stream #13(Compute)" {' '.join(kernels)} }}
  lines {{ id: 2 name: "XLA Ops" {_event(2, 0, 50)} }}
  {metadata} {stats} }}
planes {{ id: 2 name: "/device:GPU:1" lines {{ id: 1 name: "Stream #13(Compute)" {_event(1, 0, 7)} }} {metadata} }}
planes {{ id: 3 name: "/host:CPU" lines {{ id: 1 name: "python" {_event(1, 0, 9, (1, 11))} }} {metadata} {stats} }}
''')


def test_an_accelerator_trace_is_read_from_its_first_device_streams():
  kernels = profile_step.trace_kernels(_trace())
  assert [names for names, _ in kernels] == [('gemm_fusion_dot.3', 'gemm_fusion_dot_3_0'),
                                             ('command_buffer_1', 'loop_fusion_1'), ('copy.2', 'copy_2'),
                                             ('MemcpyD2H',)] * 2
  assert [seconds for _, seconds in kernels] == pytest.approx([3e-6, 1e-6, 5e-6, 0.5e-6] * 2)


def test_each_kernel_goes_to_its_loop_and_kind():
  assert profile_step.launchers(hlo_loops.computations(HLO))['gemm_fusion_dot.3'] == ('decoder forward', 'matmul')
  summary = profile_step.summarize(profile_step.trace_kernels(_trace()), HLO, steps=2, wall_s=40e-6, top=2)
  rows = {(r['part'], r['kind']): [r['calls'], r['ms'], r['us_per_call']] for r in summary['parts']}
  assert list(rows) == [('decoder forward', 'fusion'), ('decoder forward', 'matmul'), ('outside loops', 'copy'),
                        ('outside loops', 'unattributed')]
  assert [figure for row in rows.values() for figure in row] == pytest.approx(
      [1, 1e-3, 1, 1, 3e-3, 3, 1, 5e-3, 5, 1, 0.5e-3, 0.5])
  assert (summary['wall_ms'], summary['kernels'], summary['kernel_ms']) == pytest.approx((0.02, 4, 0.0095))
  assert summary['busy'] == pytest.approx(9.5 / 20)
  assert [k['kernel'] for k in summary['top']] == ['copy.2', 'gemm_fusion_dot.3']


def test_a_pallas_kernel_in_a_loop_is_its_own_kind():
  """config.rhn_kernel='pallas_layer': each micro-layer a Triton call inside XLA's loop."""
  hlo = HLO.replace('%gemm_fusion_dot.3 = f32[8,16]{1,0} fusion(%h, %w), kind=kCustom, calls=%fused_dot',
                    '%custom-call.7 = f32[8,16]{1,0} custom-call(%h, %w), '
                    'custom_call_target="__gpu$xla.gpu.triton"').replace('fusion(%gemm_fusion_dot.3)',
                                                                          'fusion(%custom-call.7)')
  assert profile_step.launchers(hlo_loops.computations(hlo))['custom-call.7'] == ('decoder forward', 'pallas')


@pytest.mark.parametrize('config', ['{name = "rhn_layer_forward", num_warps = 4 : i32}',
                                    '"{\\"name\\":\\"rhn_layer_forward\\",\\"num_warps\\":4}"'])
@pytest.mark.parametrize('kernel', ['rhn_layer_forward', 'rhn_layer_forward_2'])
def test_a_pallas_kernel_in_a_command_buffer_goes_by_its_kernel_name(config, kernel):
  """Inside a command buffer the trace names the buffer and the kernel: Pallas's name for it,
  which XLA may number. Neither is an instruction's name."""
  hlo = HLO.replace('%gemm_fusion_dot.3 = f32[8,16]{1,0} fusion(%h, %w), kind=kCustom, calls=%fused_dot',
                    '%custom-call.7 = f32[8,16]{1,0} custom-call(%h, %w), '
                    f'custom_call_target="__gpu$xla.gpu.triton", backend_config={config}').replace(
                        'fusion(%gemm_fusion_dot.3)', 'fusion(%custom-call.7)')
  assert profile_step.pallas_calls(hlo_loops.computations(hlo)) == {'rhn_layer_forward': ['custom-call.7']}
  kernels = [(('command_buffer_3', kernel), 9e-6), (('command_buffer_3', 'loop_fusion_1'), 2e-6),
             (('command_buffer_3', 'loop_fusion_1_5'), 1e-6)]  # numbered: only a Pallas kernel's
  summary = profile_step.summarize(kernels, hlo, steps=1, wall_s=12e-6, top=1)
  assert {(r['part'], r['kind']): r['calls'] for r in summary['parts']} == {
      ('decoder forward', 'pallas'): 1, ('decoder forward', 'fusion'): 1, ('outside loops', 'unattributed'): 1}
  [top] = summary['top']
  assert (top['kernel'], top['part'], top['calls']) == ('custom-call.7', 'decoder forward', 1)
  assert top['ms'] == pytest.approx(9e-3)


def test_loops_that_share_a_body_share_its_kernels():
  # XLA compiles a VRASH's encoder and decoder loops, of one shape, into one body computation.
  encoder_loop = ('  %while.2 = (f32[8,16]{1,0}, f32[16,16]{1,0}) while(%init), condition=%cond, body=%body, '
                  'metadata={op_name="jit(train_step)/MelodyModel.encode/encoder/while"}\n')
  shared = HLO.replace('  ROOT %while.1', encoder_loop + '  ROOT %while.1')
  assert profile_step.launchers(hlo_loops.computations(shared))['gemm_fusion_dot.3'] == (
      'decoder forward + encoder forward', 'matmul')
  assert profile_step.launchers(hlo_loops.computations(HLO))['gemm_fusion_dot.3'] == ('decoder forward', 'matmul')


def test_a_kernel_xla_compiled_once_for_two_loops_goes_to_both():
  # Two loops of one shape with bodies of their own: XLA compiles their identical fusions into one
  # kernel named after the first, so a kernel known only by that name belongs to either loop.
  second_body = (HLO[HLO.index('%body '):HLO.index('%cond ')].replace('%body ', '%body.2 ')
                 .replace('gemm_fusion_dot.3', 'gemm_fusion_dot.4').replace('loop_fusion.1', 'loop_fusion.2'))
  encoder_loop = ('  %while.2 = (f32[8,16]{1,0}, f32[16,16]{1,0}) while(%init), condition=%cond, body=%body.2, '
                  'metadata={op_name="jit(train_step)/MelodyModel.encode/encoder/while"}\n')
  hlo = HLO.replace('%cond ', second_body + '%cond ').replace('  ROOT %while.1', encoder_loop + '  ROOT %while.1')
  known = profile_step.launchers(hlo_loops.computations(hlo))
  assert known['gemm_fusion_dot.4'] == ('encoder forward', 'matmul')
  by_kernel = profile_step.kernel_parts(hlo_loops.computations(hlo), known)
  assert by_kernel['gemm_fusion_dot_3'] == ('gemm_fusion_dot.3', 'decoder forward + encoder forward')
  assert by_kernel['copy_2'] == ('copy.2', 'outside loops')
  kernels = [(('command_buffer_7', 'gemm_fusion_dot_3'), 2e-6), (('gemm_fusion_dot.4',), 1e-6)]
  summary = profile_step.summarize(kernels, hlo, steps=1, wall_s=3e-6, top=2)
  assert {(r['part'], r['kind']): r['calls'] for r in summary['parts']} == {
      ('decoder forward + encoder forward', 'matmul'): 1, ('encoder forward', 'matmul'): 1}


def test_a_cpu_trace_counts_each_rhn_loop_kernel_once_a_trip(tmp_path):
  """A real trace of a bfloat16 LM step on device 0 of this CPU: every kernel belongs to an
  instruction of the compiled HLO, and each RHN loop ran as many kernels as its body has, times
  its trips (bfloat16: its backward loops launch converts of their own here)."""
  config = model_config('lm', {'batch_size': 8, 'max_len': 6, 'hidden': 16, 'depth': 2})
  compiled, state, data, rng, _ = bench_train.compiled_train_step(hlo_loops.with_dtype(config, 'bfloat16'))
  kernels, wall_s = profile_step.trace_steps(compiled, state, data, rng, 2, str(tmp_path))
  summary = profile_step.summarize(kernels, compiled.as_text(), 2, wall_s, top=3)
  per_loop = {}
  for row in summary['parts']:
    per_loop[row['part']] = per_loop.get(row['part'], 0) + row['calls']
  expected = {r['loop']: r['trips'] * r['launches'] for r in hlo_loops.rhn_loops(compiled.as_text(), 2)}
  assert set(expected) == {'decoder forward', 'decoder backward'}
  assert {loop: per_loop[loop] for loop in expected} == pytest.approx(expected)
  assert all(r['kind'] != 'unattributed' and r['us_per_call'] > 0 for r in summary['parts'])
  assert summary['wall_ms'] > 0 and len(summary['top']) == 3
  assert config.dtype == 'float32'  # the profiled config was a copy
