"""ResNet: residual convolutional nets (basic and bottleneck blocks) with BatchNorm."""
