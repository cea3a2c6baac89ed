"""The built-in synthetic world, torch-free (NumPy + OpenCV): categories and their skeletons
(:mod:`.skeletons`), poses and motion (:mod:`.poses`), backgrounds (:mod:`.backgrounds`), the
renderer of figures and clips (:mod:`.render`), a fixed camera's recording (:mod:`.scene`) and the
on-disk ``synthdir`` layout (:mod:`.folder`). Training wraps it as ``synthetic:<category>``
(``ppl_edge.train.data.synthetic``); the runtime's demo and benchmark render clips with it."""
