"""The fused Triton kernel for CUDA ``transfer_entropy`` (docs/gpu.md, "The fused Triton kernel").

``dispatch`` (imported with te_ext; imports no triton) decides per call; ``ops`` registers
``te::_transfer_entropy_fused`` / ``te::_joint_counts_fused`` with ``torch.library.triton_op``;
``kernels`` loads the kernels that ``codegen`` writes per (k, l); ``heuristic`` reads the
measured table per GPU model (``tables/``); ``aot`` compiles the kernels for a GPU
architecture on a machine without one (CI's static checks).
"""
