"""Models: scikit-learn-shaped estimators, sample weights and ONNX export, per sleeve."""
