"""Files to tensors: image reading and validation, unpaired folders, transforms, built-in datasets."""
