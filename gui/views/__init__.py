"""The training views: what the network does with the data while it learns.

Each view takes the ``TrainingController`` (gui/training/controller.py) and draws what its
signals carry; none of them runs the network or touches the document except ``DataPanel``,
which edits the project's dataset choice through the document.

- ``FeatureMapView``: a validation sample's input, conv/pool feature maps and class probabilities.
- ``FilterView``: the first convolution's kernels.
- ``ConfusionView``: the validation confusion matrix at each epoch's end.
- ``GradientView``: per-layer gradient norms and dead-ReLU share per epoch.
- ``DataPanel``: choose the dataset, preview it, fit the network to it.
"""
