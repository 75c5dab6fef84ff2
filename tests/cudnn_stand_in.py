"""The stand-in cuDNN frontend the cuDNN tactics' CPU tests use. Their graphs differ (convolution, SDPA), but the
tensor and the plan side do not: a tensor records dims, strides and type as the frontend's tensor attributes do,
and StandInGraph answers the heuristics / build / workspace calls the backends make, so a test can steer which
engines exist and build, then read the operands through the declared strides where the tactic points them."""
import ctypes

import numpy as np


class FakeTensor:
    def __init__(self, name, dim=None, stride=None, data_type=None):
        self.name, self.dim, self.stride, self.data_type, self.output = name, dim, stride, data_type, False

    def set_output(self, value):
        self.output = value
        return self

    def set_data_type(self, value):
        self.data_type = value
        return self

    def set_dim(self, value):
        self.dim = value
        return self

    def set_stride(self, value):
        self.stride = value
        return self


class StandInGraph:
    """The plan side of a stand-in pygraph. Subclasses set `RANKING` (the heuristics' [(engine id, knobs)]; -1: an
    entry with no backend engine, as the frontend's Python engines), `FAILING` (engine ids that do not build),
    `REFUSED` (check_support raises) and `made` (every graph made, for the tests to inspect)."""

    RANKING: list = []
    FAILING: set = set()
    REFUSED = False
    made: list = []

    def __init__(self, **kwargs):
        self.kwargs, self.tensors, self.plans, self.built, self.executed = kwargs, {}, [], [], []
        type(self).made.append(self)

    def tensor(self, name, dim, stride, data_type):
        self.tensors[name] = FakeTensor(name, dim, stride, data_type)
        return self.tensors[name]

    def validate(self):
        pass

    def build_operation_graph(self):
        pass

    def create_execution_plans(self, modes):
        self.modes, self.plans = modes, list(self.RANKING)

    def check_support(self):
        if self.REFUSED:
            raise RuntimeError("no engine supports the graph")

    def get_execution_plan_count(self):
        return len(self.plans)

    def get_engine_and_knobs_at_index(self, index):
        if self.plans[index][0] == -1:
            raise NotImplementedError("an entry with no backend engine")
        return self.plans[index]

    def build_plan_at_index(self, index):
        if self.plans[index][0] in self.FAILING:
            raise RuntimeError(f"engine {self.plans[index][0]} is not supported")
        self.built.append(index)


def operand_memory(tensor, address):
    """The array cuDNN would see for `tensor` at device address `address` (here a host address): its declared dims
    read through its declared element strides, FLOAT as float32 and the 16-bit types as float16."""
    dtype = np.dtype(np.float32 if tensor.data_type == "FLOAT" else np.float16)
    extent = 1 + sum((n - 1) * s for n, s in zip(tensor.dim, tensor.stride))
    flat = np.ctypeslib.as_array((ctypes.c_char * (extent * dtype.itemsize)).from_address(address)).view(dtype)
    return np.lib.stride_tricks.as_strided(flat, tensor.dim, [s * dtype.itemsize for s in tensor.stride])
