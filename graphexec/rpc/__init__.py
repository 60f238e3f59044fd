"""graphexec's protobuf and gRPC boundary: the only package (with the gRPC glue in graphexec.server
and graphexec.client) that imports the generated *_pb2 modules.

* tensors: dtypes, shapes and tensors <-> protobuf; DecodeError.
* codec: tensor-carrying messages encoded and decoded by hand (one copy out, zero-copy views in),
  field numbers read from the descriptors.
* convert: attributes, nodes, graphs, plans and run metadata <-> protobuf.
* graph_types: typing received nodes by their ops' rules (no protobuf).
* example: tf.train.Example records (the TFRecord input format) and their features as numpy.
* summary: TensorBoard's Summary and Event messages (wire-compatible with TensorFlow's).
* status: the one map between tf.errors classes and gRPC statuses.
* methods: the services' method tables, read from the .proto service descriptors.
* frames: the direct links' frames on a socket; link_format: the server -> worker link's PLAN and
  ANSWER bodies, laid out by hand (no protobuf objects per run).
"""
