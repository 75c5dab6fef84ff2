"""The builder's graph IR: Graph/Node/Value with synchronized links, typed epilogues, lowering from the façade."""
from .epilogue import NO_EPILOGUE, Activation, Epilogue, apply_epilogue
from .from_network import graph_from_network
from .graph import Graph, IRError, Node, Value
