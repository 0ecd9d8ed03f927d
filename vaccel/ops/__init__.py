"""The operations of a session, grouped as vaccel-python groups them (one mixin per
family), and the tensor types of the model ops (`vaccel.ops.tf`, `vaccel.ops.tf.lite`,
`vaccel.ops.torch`)."""
