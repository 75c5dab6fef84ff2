"""`polyx bench`: trtexec-like timing of an engine (throughput, latency percentiles, H2D/compute/D2H split,
enqueue time, several streams, CUDA graphs, per-layer profile)."""
from .layer_profile import LayerProfile, LayerTime, format_layer_table, profile_layers
from .profile_summary import ProfileSummary, summarize_profile
from .result import BenchResult, format_bench_result
from .session import BenchOptions, run_bench
from .stats import STAT_NAMES, summarize
from .tactic_sources import count_layers_by_source, layer_tactic_source
from .timing import IterationTimes, TimedRun, TimingSettings, time_workers
from .worker import CpuWorker, create_workers
