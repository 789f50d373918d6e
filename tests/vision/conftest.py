import pytest

pytest.importorskip("cv2", reason="the vision tests need OpenCV (pip install 'signalwise[vision]')")
