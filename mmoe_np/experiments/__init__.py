"""The paper's experiments: synthetic task-relatedness studies and the Census-income benchmark."""
