#!/usr/bin/env python3
"""Dump every tensor of every TFLM invoke, for bit-exact debugging.

Runs a .tflite model in the TensorFlow Lite Micro reference interpreter
(the `tflite-micro` pip package, see tools/python-requirements.txt) with all
intermediate tensors preserved, feeds it consecutive frames read from a raw
file, and writes the content of every tensor of subgraph 0 after every invoke.

The interpreter is reset once before the first frame and never again, so
stateful operators (noise estimates, delay lines, ...) carry their state from
frame to frame exactly as in a streaming application.

Usage:
    python tools/tflm_dump_tensors.py MODEL INPUT NUM_FRAMES OUT_DIR

    MODEL       path of the .tflite file
    INPUT       raw little-endian file holding NUM_FRAMES consecutive frames
                for input 0; one frame is exactly the input tensor (its dtype
                and element count, e.g. 480 int16 = 960 bytes)
    NUM_FRAMES  number of frames to invoke; INPUT must hold at least that many
    OUT_DIR     created if missing; receives

        index.json                 model path, frame count, one entry per
                                   tensor (index, name, dtype, shape,
                                   is_constant) and one per operator
                                   (opcode or custom code, inputs, outputs,
                                   custom options decoded from FlexBuffers,
                                   raw custom options as hex)
        frame_NNNN/tIII.bin        raw little-endian bytes of tensor III
                                   after invoke NNNN (both zero-based, zero
                                   padded to 4 and 3 digits)

Constant tensors are written for every frame too (they are small) so that a
consumer can read any tensor with the same path pattern.
"""

import argparse
import json
import os
import sys

import numpy as np
from flatbuffers import flexbuffers
from tflite_micro import runtime
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema


def _builtin_name(code):
    for name, value in vars(schema.BuiltinOperator).items():
        if not name.startswith("_") and value == code:
            return name
    return f"BUILTIN_{code}"


def _tensor_type_name(code):
    for name, value in vars(schema.TensorType).items():
        if not name.startswith("_") and value == code:
            return name
    return f"TYPE_{code}"


def describe_model(model_bytes):
    """Return (tensors, operators) descriptions of subgraph 0."""
    model = schema.Model.GetRootAsModel(model_bytes, 0)
    graph = model.Subgraphs(0)
    tensors = []
    for i in range(graph.TensorsLength()):
        t = graph.Tensors(i)
        buf = model.Buffers(t.Buffer())
        is_constant = buf is not None and (buf.DataLength() > 0 or buf.Size() > 0)
        tensors.append(
            {
                "index": i,
                "name": t.Name().decode("utf-8", "replace") if t.Name() else "",
                "type": _tensor_type_name(t.Type()),
                "shape": [int(d) for d in t.ShapeAsNumpy()] if t.ShapeLength() else [],
                "is_constant": bool(is_constant),
            }
        )
    operators = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        entry = {
            "index": i,
            "opcode": _builtin_name(builtin),
            "custom_code": code.CustomCode().decode() if code.CustomCode() else None,
            "inputs": [int(x) for x in op.InputsAsNumpy()] if op.InputsLength() else [],
            "outputs": [int(x) for x in op.OutputsAsNumpy()] if op.OutputsLength() else [],
        }
        if op.CustomOptionsLength():
            raw = bytes(op.CustomOptionsAsNumpy())
            entry["custom_options_hex"] = raw.hex()
            try:
                entry["custom_options"] = flexbuffers.Loads(raw)
            except Exception as exc:  # keep going: the raw bytes are there
                entry["custom_options_error"] = str(exc)
        operators.append(entry)
    return tensors, operators


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="path of the .tflite model")
    parser.add_argument("input", help="raw little-endian frames for input 0")
    parser.add_argument("num_frames", type=int, help="number of frames to invoke")
    parser.add_argument("out_dir", help="output directory")
    args = parser.parse_args(argv)

    with open(args.model, "rb") as f:
        model_bytes = f.read()
    tensors, operators = describe_model(model_bytes)

    interp = runtime.Interpreter.from_file(
        args.model,
        intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors,
    )
    details = interp.get_input_details(0)
    in_dtype = np.dtype(details["dtype"]).newbyteorder("<")
    in_shape = tuple(int(d) for d in details["shape"])
    frame_elems = int(np.prod(in_shape))

    raw = np.fromfile(args.input, dtype=in_dtype)
    if args.num_frames < 0 or raw.size < args.num_frames * frame_elems:
        sys.exit(
            f"{args.input}: holds {raw.size} elements, need "
            f"{args.num_frames} x {frame_elems}"
        )

    os.makedirs(args.out_dir, exist_ok=True)
    interp.reset()
    for frame in range(args.num_frames):
        chunk = raw[frame * frame_elems : (frame + 1) * frame_elems]
        interp.set_input(chunk.reshape(in_shape).astype(details["dtype"]), 0)
        interp.invoke()
        frame_dir = os.path.join(args.out_dir, f"frame_{frame:04d}")
        os.makedirs(frame_dir, exist_ok=True)
        for t in tensors:
            data = interp.GetTensor(t["index"], 0)["tensor_data"]
            arr = np.asarray(data)
            t["dtype"] = str(arr.dtype)
            le = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
            le.tofile(os.path.join(frame_dir, f"t{t['index']:03d}.bin"))

    index = {
        "model": os.path.abspath(args.model),
        "num_frames": args.num_frames,
        "frame_elements": frame_elems,
        "file_pattern": "frame_{frame:04d}/t{tensor:03d}.bin",
        "tensors": tensors,
        "operators": operators,
    }
    with open(os.path.join(args.out_dir, "index.json"), "w") as f:
        json.dump(index, f, indent=1, default=str)
    print(f"wrote {args.num_frames} frames x {len(tensors)} tensors to {args.out_dir}")


if __name__ == "__main__":
    main()
