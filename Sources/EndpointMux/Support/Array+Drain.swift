extension Array {
    /// Moves every element out to `body`, in order, and leaves the array empty with its
    /// capacity kept.
    ///
    /// `for element in array` followed by `removeAll()` copies each element (retaining
    /// what it holds) and then destroys the original (releasing it again); a batch of
    /// events or actions is handed on with neither. Each slot is refilled with
    /// `placeholder` (choose a case with no storage) as its element leaves, so every slot
    /// stays initialized until the array is emptied at the end.
    @inlinable
    package mutating func drain(placeholder: Element, _ body: (consuming Element) -> Void) {
        let count = self.count
        guard count > 0 else { return }
        withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            for index in 0..<count {
                let element = (base + index).move()
                (base + index).initialize(to: placeholder)
                body(consume element)
            }
        }
        removeAll(keepingCapacity: true)
    }
}
