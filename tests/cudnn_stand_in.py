"""The tensor of the stand-in cuDNN frontend the cuDNN tactics' CPU tests use (their graphs differ, the tensor not):
it records dims, strides and type as the frontend's tensor attributes do, so a test can read operands through them."""


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
